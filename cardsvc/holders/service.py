"""Registering cardholders and reading their personal data, always for a stated purpose."""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.context import TAIPEI, Ctx
from cardsvc.errors import Forbidden, InvalidInput, NotFound
from cardsvc.holders import schemas
from cardsvc.holders.errors import (
    CardholderErased,
    CompanionAlreadyRegistered,
    DuplicateCardholder,
)
from cardsvc.holders.models import Cardholder, DisabilityCertificate, Employment, Enrolment
from cardsvc.identifiers import mask_person_id, normalize_person_id, person_id_kind

PERSON_ID_NS = "person_id"
# Roles that may see a full national ID, and only with reveal=true and a purpose.
REVEAL_ROLES = frozenset({"clerk", "supervisor"})


def person_id_hash(ctx: Ctx, person_id: str) -> str:
    return ctx.keys.lookup_hash(PERSON_ID_NS, normalize_person_id(person_id))


def valid_person_id(value: str) -> tuple[str, str]:
    """(the normalised number, 'national' or 'resident'); 422 when it is not a valid one, so
    a typo is told, not searched for in vain."""
    pid = normalize_person_id(value)
    kind = person_id_kind(pid)
    if kind is None:
        raise InvalidInput("person_id is not a valid national ID or resident certificate "
                           "number (format or check digit)", field="person_id")
    return pid, kind


def register(ctx: Ctx, data: schemas.CardholderCreate) -> Cardholder:
    pid, kind = valid_person_id(data.person_id)
    pii = ctx.keys.pii
    holder = Cardholder(
        name=data.name,
        person_id_enc=pii.encrypt("person_id", pid),
        person_id_hash=person_id_hash(ctx, pid),
        person_id_kind=kind,
        birth_date_enc=pii.encrypt("birth_date", data.birth_date.isoformat()),
        phone_enc=pii.encrypt("phone", data.phone) if data.phone else None,
        email_enc=pii.encrypt("email", str(data.email)) if data.email else None,
        township=data.township,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    # A savepoint so a duplicate becomes a clean 409 even when two clerks race.
    try:
        with ctx.db.begin_nested():
            ctx.db.add(holder)
            ctx.db.flush()
    except IntegrityError:
        raise DuplicateCardholder(
            "a cardholder with this national ID / resident certificate number is already "
            "registered"
        ) from None
    audit.record(ctx, "cardholder.register", target_type="cardholder", target_id=holder.id,
                 detail={"township": holder.township, "kind": kind})
    return holder


def get(ctx: Ctx, holder_id: int, *, for_update: bool = False,
        erased_ok: bool = False) -> Cardholder:
    """The resident; one whose personal data was erased only for a read (`erased_ok`):
    anything done for or with them is refused, so a new action is refused by default."""
    holder = ctx.db.get(Cardholder, holder_id, with_for_update=for_update)
    if holder is None:
        raise NotFound(f"no cardholder {holder_id}")
    if holder.erased_at is not None and not erased_ok:
        raise_erased(holder)
    return holder


def raise_erased(holder: Cardholder) -> NoReturn:
    erased_on = holder.erased_at.astimezone(TAIPEI).date() if holder.erased_at else "?"
    raise CardholderErased(
        f"cardholder {holder.id}'s personal data was erased on {erased_on} (retention): "
        "nothing can be done with this record; a returning resident registers again",
        cardholder_id=holder.id)


def birth_date(ctx: Ctx, holder: Cardholder) -> dt.date:
    if holder.erased_at is not None:
        raise_erased(holder)
    return dt.date.fromisoformat(ctx.keys.pii.decrypt("birth_date", holder.birth_date_enc))


def masked_person_id(ctx: Ctx, holder: Cardholder) -> str:
    if holder.erased_at is not None:
        return ""
    return mask_person_id(ctx.keys.pii.decrypt("person_id", holder.person_id_enc))


def summary(ctx: Ctx, holder: Cardholder) -> schemas.CardholderSummary:
    return schemas.CardholderSummary(id=holder.id, name=holder.name,
                                     person_id_masked=masked_person_id(ctx, holder),
                                     township=holder.township, erased_at=holder.erased_at)


def read_full(ctx: Ctx, holder_id: int, purpose: str, reveal: bool) -> schemas.CardholderOut:
    """The whole record, decrypted. Audited with its purpose; full ID only when allowed."""
    if reveal and ctx.actor.role not in REVEAL_ROLES:
        raise Forbidden(f"role {ctx.actor.role!r} may not see full national IDs")
    holder = get(ctx, holder_id, erased_ok=True)
    if holder.erased_at is not None:
        audit.record(ctx, "cardholder.read", target_type="cardholder", target_id=holder.id,
                     purpose=purpose, detail={"revealed_person_id": False, "erased": True})
        return schemas.CardholderOut(
            id=holder.id, name=holder.name, person_id_masked="", person_id_kind=None,
            birth_date=None, phone=None, email=None, township=holder.township, enrolments=[],
            disability_certificates=[], employments=[], created_at=holder.created_at,
            erased_at=holder.erased_at)
    pii = ctx.keys.pii
    pid = pii.decrypt("person_id", holder.person_id_enc)
    enrolments = ctx.db.scalars(
        select(Enrolment).where(Enrolment.cardholder_id == holder.id).order_by(Enrolment.id)
    ).all()
    certs = ctx.db.scalars(
        select(DisabilityCertificate).where(DisabilityCertificate.cardholder_id == holder.id)
        .order_by(DisabilityCertificate.id)
    ).all()
    jobs = ctx.db.scalars(
        select(Employment).where(Employment.cardholder_id == holder.id).order_by(Employment.id)
    ).all()
    audit.record(ctx, "cardholder.read", target_type="cardholder", target_id=holder.id,
                 purpose=purpose, detail={"revealed_person_id": reveal})
    return schemas.CardholderOut(
        id=holder.id,
        name=holder.name,
        person_id_masked=mask_person_id(pid),
        person_id=pid if reveal else None,
        person_id_kind=holder.person_id_kind,
        birth_date=birth_date(ctx, holder),
        phone=pii.decrypt("phone", holder.phone_enc) if holder.phone_enc else None,
        email=pii.decrypt("email", holder.email_enc) if holder.email_enc else None,
        township=holder.township,
        enrolments=[schemas.EnrolmentOut.model_validate(e) for e in enrolments],
        disability_certificates=[
            schemas.DisabilityCertificateOut(
                id=c.id, valid_until=c.valid_until, companion_id=c.companion_id,
                certificate_no_masked=_mask_tail(pii.decrypt("certificate_no",
                                                             c.certificate_no_enc)),
            )
            for c in certs
        ],
        employments=[schemas.EmploymentOut.model_validate(j) for j in jobs],
        created_at=holder.created_at,
    )


def _mask_tail(value: str) -> str:
    return "*" * max(len(value) - 3, 0) + value[-3:]


def name_starts_with(ctx: Ctx, prefix: str) -> ColumnElement[bool]:
    """Names beginning with `prefix`, as the name index answers it: LIKE 'x%' on PostgreSQL
    (pattern operators), a binary range on SQLite (whose LIKE ignores case, and indexes)."""
    if ctx.db.get_bind().dialect.name == "postgresql":
        return Cardholder.name.startswith(prefix, autoescape=True)
    if not prefix or ord(prefix[-1]) == 0x10FFFF:
        return Cardholder.name >= prefix
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(Cardholder.name >= prefix, Cardholder.name < after)


def search(ctx: Ctx, purpose: str, person_id: str | None, name: str | None,
           limit: int) -> list[schemas.CardholderSummary]:
    if not person_id and not name:
        raise InvalidInput("give person_id or name to search by")
    q = select(Cardholder).where(Cardholder.erased_at.is_(None))
    if person_id:
        pid, _ = valid_person_id(person_id)
        q = q.where(Cardholder.person_id_hash == person_id_hash(ctx, pid))
    if name:
        q = q.where(name_starts_with(ctx, name.strip()))
    rows = ctx.db.scalars(q.order_by(Cardholder.id).limit(limit)).all()
    audit.record(ctx, "cardholder.search", target_type="cardholder", purpose=purpose,
                 detail={"by": "person_id" if person_id else "name", "results": len(rows),
                         # who was shown (ids only): a resident's access log lists it
                         "cardholders": [h.id for h in rows]})
    return [summary(ctx, h) for h in rows]


def update(ctx: Ctx, holder_id: int, data: schemas.CardholderUpdate) -> Cardholder:
    holder = get(ctx, holder_id, for_update=True)
    changed: list[str] = []
    if data.name is not None:
        holder.name = data.name
        changed.append("name")
    if data.township is not None:
        holder.township = data.township
        changed.append("township")
    elif data.clear_township:
        holder.township = None
        changed.append("township")
    if data.phone is not None:
        holder.phone_enc = ctx.keys.pii.encrypt("phone", data.phone)
        changed.append("phone")
    if data.email is not None:
        holder.email_enc = ctx.keys.pii.encrypt("email", str(data.email))
        changed.append("email")
    holder.updated_at = ctx.now
    audit.record(ctx, "cardholder.update", target_type="cardholder", target_id=holder.id,
                 detail={"fields": changed})
    return holder


def add_enrolment(ctx: Ctx, holder_id: int, data: schemas.EnrolmentCreate) -> Enrolment:
    holder = get(ctx, holder_id, for_update=True)  # erasure waits, or wins
    row = Enrolment(cardholder_id=holder.id, school=data.school, valid_until=data.valid_until,
                    created_at=ctx.now)
    ctx.db.add(row)
    ctx.db.flush()
    audit.record(ctx, "cardholder.enrolment_add", target_type="cardholder",
                 target_id=holder.id, detail={"enrolment": row.id,
                                              "valid_until": data.valid_until.isoformat()})
    return row


def change_enrolment_end(ctx: Ctx, holder_id: int, enrolment_id: int,
                         data: schemas.EnrolmentEnd) -> Enrolment:
    holder = get(ctx, holder_id, for_update=True)  # erasure waits, or wins
    row = ctx.db.get(Enrolment, enrolment_id, with_for_update=True)
    if row is None or row.cardholder_id != holder.id:
        raise NotFound(f"cardholder {holder.id} has no enrolment {enrolment_id}")
    before, row.valid_until = row.valid_until, data.valid_until
    ctx.db.flush()
    audit.record(ctx, "cardholder.enrolment_change", target_type="cardholder",
                 target_id=holder.id, detail={"enrolment": row.id,
                                              "from": before.isoformat(),
                                              "to": data.valid_until.isoformat(),
                                              "note": data.note})
    return row


def add_employment(ctx: Ctx, holder_id: int, data: schemas.EmploymentCreate) -> Employment:
    holder = get(ctx, holder_id, for_update=True)  # erasure waits, or wins
    row = Employment(cardholder_id=holder.id, employer=data.employer,
                     employer_kind=data.employer_kind.value, valid_until=data.valid_until,
                     created_at=ctx.now)
    ctx.db.add(row)
    ctx.db.flush()
    audit.record(ctx, "cardholder.employment_add", target_type="cardholder",
                 target_id=holder.id, detail={"employment": row.id,
                                              "employer_kind": row.employer_kind,
                                              "valid_until": data.valid_until.isoformat()})
    return row


def add_disability_certificate(ctx: Ctx, holder_id: int,
                               data: schemas.DisabilityCertificateCreate
                               ) -> schemas.DisabilityCertificateOut:
    holder = get(ctx, holder_id, for_update=True)  # erasure waits, or wins
    if data.companion_id is not None:
        if data.companion_id == holder.id:
            raise InvalidInput("a cardholder cannot be their own companion")
        get(ctx, data.companion_id)
        # One registered companion (陪伴) per cardholder, across their valid certificates.
        other = ctx.db.scalar(select(DisabilityCertificate.companion_id).where(
            DisabilityCertificate.cardholder_id == holder.id,
            DisabilityCertificate.valid_until >= ctx.today,
            DisabilityCertificate.companion_id.is_not(None),
            DisabilityCertificate.companion_id != data.companion_id).limit(1))
        if other is not None:
            raise CompanionAlreadyRegistered(
                f"cardholder {holder.id} already has a registered companion ({other}); a "
                "cardholder has one companion")
    row = DisabilityCertificate(
        cardholder_id=holder.id,
        certificate_no_enc=ctx.keys.pii.encrypt("certificate_no", data.certificate_no),
        valid_until=data.valid_until, companion_id=data.companion_id, created_at=ctx.now,
    )
    ctx.db.add(row)
    ctx.db.flush()
    audit.record(ctx, "cardholder.disability_certificate_add", target_type="cardholder",
                 target_id=holder.id,
                 detail={"certificate": row.id, "valid_until": data.valid_until.isoformat(),
                         "companion_id": data.companion_id})
    return schemas.DisabilityCertificateOut(
        id=row.id, certificate_no_masked=_mask_tail(data.certificate_no),
        valid_until=row.valid_until, companion_id=row.companion_id)
