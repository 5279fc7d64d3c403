"""Who may hold which card product. Checked at application, at issuance and at renewal.

Every refusal names the rule that failed (`Ineligible.rule`), so the counter can tell the
resident exactly what is missing. Thresholds come from settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from cardsvc.cards.errors import Ineligible
from cardsvc.cards.models import Concession, Product
from cardsvc.context import Ctx
from cardsvc.holders import service as holders
from cardsvc.holders.models import Cardholder, DisabilityCertificate, Enrolment


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


def _require_registered(holder: Cardholder, rule: str, product: str) -> None:
    if holder.township is None:
        raise Ineligible(rule, f"a {product} card needs household registration in the county; "
                               "this cardholder has none on record")


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
        last = ctx.db.scalars(
            select(Enrolment).where(Enrolment.cardholder_id == holder.id)
            .order_by(Enrolment.valid_until.desc()).limit(1)
        ).first()
        if last is None:
            raise Ineligible("student.enrolment_valid", "no student enrolment on record")
        if last.valid_until < on:
            raise Ineligible("student.enrolment_valid",
                             f"the enrolment at {last.school} ended on {last.valid_until}")
        # The concession ends with the enrolment.
        return Decision(product, Concession.STUDENT, min(default_expiry, last.valid_until),
                        f"enrolled at {last.school} until {last.valid_until}")

    if product == Product.SENIOR:
        _require_registered(holder, "senior.registered_in_county", "senior/concession")
        if age >= s.senior_min_age:
            return Decision(product, Concession.SENIOR,
                            add_years(on, s.senior_card_validity_years), f"age {age}")
        own = ctx.db.scalars(
            select(DisabilityCertificate)
            .where(DisabilityCertificate.cardholder_id == holder.id,
                   DisabilityCertificate.valid_until >= on)
            .order_by(DisabilityCertificate.valid_until.desc()).limit(1)
        ).first()
        if own is not None:
            return Decision(product, Concession.DISABILITY,
                            min(default_expiry, own.valid_until),
                            f"disability certificate valid until {own.valid_until}")
        as_companion = ctx.db.scalars(
            select(DisabilityCertificate)
            .where(DisabilityCertificate.companion_id == holder.id,
                   DisabilityCertificate.valid_until >= on)
            .order_by(DisabilityCertificate.valid_until.desc()).limit(1)
        ).first()
        if as_companion is not None:
            return Decision(product, Concession.COMPANION,
                            min(default_expiry, as_companion.valid_until),
                            f"registered companion until {as_companion.valid_until}")
        raise Ineligible(
            "senior.age_or_disability",
            f"a senior/concession card needs age ≥ {s.senior_min_age} on the issue date "
            f"({on}; the cardholder is {age}), a valid disability certificate, or registration "
            "as the companion on one")

    raise Ineligible("product.unknown", f"unknown product {product!r}")  # pragma: no cover
