"""Who may hold which card product. Checked at application, at issuance and at renewal.

A concession proof (enrolment, disability certificate, employment) bounds the concession, not
the card: the card keeps its validity, and after the proof's end its holder pays the full
fare (the chip's profile carries the end date) until a new proof extends it.

Every refusal names the rule that failed (`Ineligible.rule`), so the counter can tell the
resident exactly what is missing. Thresholds come from settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from cardsvc.cards.errors import Ineligible
from cardsvc.cards.models import LIVE_STATUSES, Card, Concession, Product
from cardsvc.context import TAIPEI, Ctx
from cardsvc.holders import service as holders
from cardsvc.holders.models import Cardholder, DisabilityCertificate, Employment, Enrolment


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year + years, day=28)


def age_on(birth: dt.date, on: dt.date) -> int:
    """Completed years on `on`. Someone born on 29 February completes a year on 28 February
    of a common year (Civil Code art. 121: a period ending in a month without that day ends
    on the month's last day)."""
    years = on.year - birth.year
    anniversary = add_years(birth, years)
    return years if on >= anniversary else years - 1


@dataclass(frozen=True)
class Decision:
    product: Product
    concession: Concession
    expires_on: dt.date
    basis: str  # human-readable reason the product was granted
    # The concession's last day (the proof's end; the card's expiry for a senior). The card
    # outlives it: afterwards its holder pays the full fare until the proof is renewed.
    concession_until: dt.date | None = None


def _require_registered(holder: Cardholder, rule: str, product: str) -> None:
    if holder.township is None:
        raise Ineligible(rule, f"a {product} card needs household registration in the county; "
                               "this cardholder has none on record")


def latest_enrolment(ctx: Ctx, holder_id: int) -> Enrolment | None:
    return ctx.db.scalars(select(Enrolment).where(Enrolment.cardholder_id == holder_id)
                          .order_by(Enrolment.valid_until.desc()).limit(1)).first()


def latest_employment(ctx: Ctx, holder_id: int) -> Employment | None:
    return ctx.db.scalars(select(Employment).where(Employment.cardholder_id == holder_id)
                          .order_by(Employment.valid_until.desc()).limit(1)).first()


def own_certificate(ctx: Ctx, holder_id: int, on: dt.date) -> DisabilityCertificate | None:
    """The holder's disability certificate valid on `on` that lasts longest."""
    return ctx.db.scalars(
        select(DisabilityCertificate)
        .where(DisabilityCertificate.cardholder_id == holder_id,
               DisabilityCertificate.valid_until >= on)
        .order_by(DisabilityCertificate.valid_until.desc()).limit(1)).first()


def companion_certificate(ctx: Ctx, holder_id: int,
                          on: dt.date) -> DisabilityCertificate | None:
    """A certificate valid on `on` that registers the holder as its companion (陪伴)."""
    return ctx.db.scalars(
        select(DisabilityCertificate)
        .where(DisabilityCertificate.companion_id == holder_id,
               DisabilityCertificate.valid_until >= on)
        .order_by(DisabilityCertificate.valid_until.desc()).limit(1)).first()


def concession_end(ctx: Ctx, holder: Cardholder, concession: str, expires_on: dt.date,
                   on: dt.date) -> dt.date | None:
    """The last day of a card's concession as the proofs on record say on `on` (None: no
    concession). A proof that ended stays the answer: the concession ended then."""
    if concession == Concession.SENIOR:
        return expires_on
    if concession == Concession.STUDENT:
        enrolment = latest_enrolment(ctx, holder.id)
        return enrolment.valid_until if enrolment else None
    if concession == Concession.STAFF:
        employment = latest_employment(ctx, holder.id)
        return employment.valid_until if employment else None
    if concession == Concession.DISABILITY:
        cert = own_certificate(ctx, holder.id, dt.date.min)
        return cert.valid_until if cert else None
    if concession == Concession.COMPANION:
        cert = companion_certificate(ctx, holder.id, dt.date.min)
        return cert.valid_until if cert else None
    return None


def decide(ctx: Ctx, holder: Cardholder, product: Product, on: dt.date) -> Decision:
    s = ctx.settings
    birth = holders.birth_date(ctx, holder)
    age = age_on(birth, on)
    default_expiry = add_years(on, s.card_validity_years)

    if product in (Product.GENERAL, Product.MOBILE):
        name = product.value
        _require_registered(holder, f"{name}.registered_in_county", name)
        if age < s.general_min_age:
            raise Ineligible(f"{name}.min_age",
                             f"a {name} card needs age ≥ {s.general_min_age} on {on}; "
                             f"the cardholder is {age}")
        return Decision(product, Concession.NONE, default_expiry, "registered in the county")

    if product == Product.STUDENT:
        last = latest_enrolment(ctx, holder.id)
        if last is None:
            raise Ineligible("student.enrolment_valid", "no student enrolment on record")
        if last.valid_until < on:
            raise Ineligible("student.enrolment_valid",
                             f"the enrolment at {last.school} ended on {last.valid_until}")
        return Decision(product, Concession.STUDENT, default_expiry,
                        f"enrolled at {last.school} until {last.valid_until}",
                        last.valid_until)

    if product == Product.STAFF:
        job = latest_employment(ctx, holder.id)
        if job is None:
            raise Ineligible("staff.employment_valid",
                             "a staff card needs an employment with the county government, "
                             "its agencies or schools, the council or a township office on "
                             "record")
        if job.valid_until < on:
            raise Ineligible("staff.employment_valid",
                             f"the employment at {job.employer} ended on {job.valid_until}")
        return Decision(product, Concession.STAFF, default_expiry,
                        f"employed at {job.employer} until {job.valid_until}", job.valid_until)

    if product == Product.SENIOR:
        _require_registered(holder, "senior.registered_in_county", "senior/concession")
        if age >= s.senior_min_age:
            expiry = add_years(on, s.senior_card_validity_years)
            return Decision(product, Concession.SENIOR, expiry, f"age {age}", expiry)
        own = own_certificate(ctx, holder.id, on)
        if own is not None:
            return Decision(product, Concession.DISABILITY, default_expiry,
                            f"disability certificate valid until {own.valid_until}",
                            own.valid_until)
        as_companion = companion_certificate(ctx, holder.id, on)
        if as_companion is not None:
            return Decision(product, Concession.COMPANION, default_expiry,
                            f"registered companion until {as_companion.valid_until}",
                            as_companion.valid_until)
        raise Ineligible(
            "senior.age_or_disability",
            f"a senior/concession card needs age ≥ {s.senior_min_age} on the issue date "
            f"({on}; the cardholder is {age}), a valid disability certificate, or registration "
            "as the companion on one")

    raise Ineligible("product.unknown", f"unknown product {product!r}")  # pragma: no cover


def concession_problem(ctx: Ctx, card: Card, product: str, concession: str,
                       day: dt.date) -> str | None:
    """Why a ride's certified product and concession were not the card's due on `day` in the
    backend's view (None: they were). Clearing pays a subsidy only for rides with none."""
    if product != card.product or concession != card.concession:
        return "concession_mismatch"
    issued = card.issued_at.astimezone(TAIPEI).date() if card.issued_at else None
    closed = card.closed_at.astimezone(TAIPEI).date() if card.closed_at else None
    if issued is None or issued > day or (closed is not None and closed < day) \
            or card.expires_on < day:
        return "card_not_live"
    holder = ctx.db.get(Cardholder, card.cardholder_id)
    if holder is None:  # pragma: no cover - a card has its holder
        return "card_not_live"
    if concession == Concession.NONE:
        return None
    if concession == Concession.SENIOR:
        ok = age_on(holders.birth_date(ctx, holder), day) >= ctx.settings.senior_min_age
    elif concession == Concession.STUDENT:
        ok = ctx.db.scalar(select(Enrolment.id).where(
            Enrolment.cardholder_id == holder.id, Enrolment.valid_until >= day).limit(1)) \
            is not None
    elif concession == Concession.STAFF:
        ok = ctx.db.scalar(select(Employment.id).where(
            Employment.cardholder_id == holder.id, Employment.valid_until >= day).limit(1)) \
            is not None
    elif concession == Concession.DISABILITY:
        ok = own_certificate(ctx, holder.id, day) is not None
    elif concession == Concession.COMPANION:
        # The companion rides on the 愛心 holder's terms: that holder needs a live card too.
        cert = companion_certificate(ctx, holder.id, day)
        ok = cert is not None and ctx.db.scalar(select(Card.id).where(
            Card.cardholder_id == cert.cardholder_id,
            Card.concession == Concession.DISABILITY, Card.status.in_(LIVE_STATUSES),
            Card.expires_on >= day).limit(1)) is not None
    else:
        ok = False
    return None if ok else "concession_not_valid"
