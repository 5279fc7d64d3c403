"""The merchant and terminal registry; terminal credentials and signed-request checks."""

from __future__ import annotations

import base64
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.context import Ctx
from cardsvc.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from merchants.pos import service as pos
from merchants.pos.errors import (
    BadSignature,
)
from merchants.registry import schemas as s
from merchants.registry.identifiers import valid_tax_id
from merchants.registry.models import Merchant, MerchantStatus, Terminal, TerminalStatus


def _mask_account(value: str) -> str:
    digits = value.replace("-", "")
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def merchant_out(ctx: Ctx, m: Merchant) -> s.MerchantOut:
    account = ctx.keys.pii.decrypt("bank_account", m.bank_account_enc)
    return s.MerchantOut(id=m.id, legal_name=m.legal_name, tax_id=m.tax_id,
                         category=m.category, fee_bps=m.fee_bps,
                         bank_account_masked=_mask_account(account), status=m.status,
                         created_at=m.created_at)


def create_merchant(ctx: Ctx, data: s.MerchantCreate) -> Merchant:
    if not valid_tax_id(data.tax_id):
        raise InvalidInput("tax_id is not a valid unified business number (統一編號)",
                           field="tax_id")
    m = Merchant(legal_name=data.legal_name, tax_id=data.tax_id, category=data.category.value,
                 fee_bps=data.fee_bps,
                 bank_account_enc=ctx.keys.pii.encrypt("bank_account", data.bank_account),
                 status=MerchantStatus.ACTIVE, created_at=ctx.now, updated_at=ctx.now)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(m)
            ctx.db.flush()
    except IntegrityError:
        raise Conflict("a merchant with this tax_id is already registered",
                       field="tax_id") from None
    audit.record(ctx, "merchant.create", target_type="merchant", target_id=m.id,
                 detail={"tax_id": m.tax_id, "category": m.category, "fee_bps": m.fee_bps})
    return m


def get_merchant(ctx: Ctx, merchant_id: int, for_update: bool = False) -> Merchant:
    m = ctx.db.get(Merchant, merchant_id, with_for_update=for_update)
    if m is None:
        raise NotFound(f"no merchant {merchant_id}")
    return m


def list_merchants(ctx: Ctx) -> list[Merchant]:
    return list(ctx.db.scalars(select(Merchant).order_by(Merchant.id)))


def update_merchant(ctx: Ctx, merchant_id: int, data: s.MerchantUpdate) -> Merchant:
    m = get_merchant(ctx, merchant_id, for_update=True)
    changed: dict[str, object] = {}
    if data.legal_name is not None:
        m.legal_name = data.legal_name
        changed["legal_name"] = True
    if data.fee_bps is not None:
        changed["fee_bps"] = [m.fee_bps, data.fee_bps]
        m.fee_bps = data.fee_bps
    if data.bank_account is not None:
        m.bank_account_enc = ctx.keys.pii.encrypt("bank_account", data.bank_account)
        changed["bank_account"] = True
    if data.status is not None:
        changed["status"] = [m.status, data.status]
        m.status = data.status
    m.updated_at = ctx.now
    audit.record(ctx, "merchant.update", target_type="merchant", target_id=m.id, detail=changed)
    return m


# --- terminals -----------------------------------------------------------------------------


def _wrap_secret(kek: bytes, key_id: str, secret: bytes) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(kek).encrypt(nonce, secret, f"terminal:{key_id}".encode())
    return base64.b64encode(nonce + ct).decode()


def unwrap_secret(kek: bytes, key_id: str, secret_enc: str) -> bytes:
    raw = base64.b64decode(secret_enc)
    try:
        return AESGCM(kek).decrypt(raw[:12], raw[12:], f"terminal:{key_id}".encode())
    except InvalidTag:
        raise BadSignature("terminal credentials cannot be read") from None


def _new_credentials(ctx: Ctx, t: Terminal) -> str:
    secret = secrets.token_bytes(32)
    t.key_id = "tk_" + secrets.token_hex(12)
    t.secret_enc = _wrap_secret(ctx.keys.secrets.kek, t.key_id, secret)
    return base64.urlsafe_b64encode(secret).decode().rstrip("=")


def terminal_out(t: Terminal) -> s.TerminalOut:
    return s.TerminalOut(id=t.id, merchant_id=t.merchant_id, label=t.label,
                         location=t.location, key_id=t.key_id, status=t.status,
                         created_at=t.created_at, rotated_at=t.rotated_at)


def create_terminal(ctx: Ctx, merchant_id: int, data: s.TerminalCreate) -> s.TerminalCredentials:
    m = get_merchant(ctx, merchant_id)
    if m.status != MerchantStatus.ACTIVE:
        raise Conflict(f"merchant {m.id} is {m.status}")
    t = Terminal(merchant_id=m.id, label=data.label, location=data.location,
                 status=TerminalStatus.ACTIVE, created_at=ctx.now, key_id="", secret_enc="")
    secret = _new_credentials(ctx, t)
    ctx.db.add(t)
    ctx.db.flush()
    pos.takings_account(ctx, t.id)
    audit.record(ctx, "terminal.create", target_type="terminal", target_id=t.id,
                 detail={"merchant_id": m.id, "key_id": t.key_id})
    return s.TerminalCredentials(**terminal_out(t).model_dump(), secret=secret)


def get_terminal(ctx: Ctx, terminal_id: int, for_update: bool = False) -> Terminal:
    t = ctx.db.get(Terminal, terminal_id, with_for_update=for_update)
    if t is None:
        raise NotFound(f"no terminal {terminal_id}")
    return t


def rotate_terminal(ctx: Ctx, terminal_id: int) -> s.TerminalCredentials:
    """New key id and secret; the old ones stop working at once."""
    t = get_terminal(ctx, terminal_id, for_update=True)
    if t.status != TerminalStatus.ACTIVE:
        raise Conflict(f"terminal {t.id} is {t.status}")
    old = t.key_id
    secret = _new_credentials(ctx, t)
    t.rotated_at = ctx.now
    audit.record(ctx, "terminal.rotate", target_type="terminal", target_id=t.id,
                 detail={"old_key_id": old, "key_id": t.key_id})
    return s.TerminalCredentials(**terminal_out(t).model_dump(), secret=secret)


def revoke_terminal(ctx: Ctx, terminal_id: int, reason: str) -> Terminal:
    t = get_terminal(ctx, terminal_id, for_update=True)
    t.status = TerminalStatus.REVOKED
    audit.record(ctx, "terminal.revoke", target_type="terminal", target_id=t.id,
                 detail={"reason": reason})
    return t


def list_terminals(ctx: Ctx, merchant_id: int) -> list[Terminal]:
    get_merchant(ctx, merchant_id)
    return list(ctx.db.scalars(select(Terminal).where(Terminal.merchant_id == merchant_id)
                               .order_by(Terminal.id)))


# --- signed requests -----------------------------------------------------------------------






