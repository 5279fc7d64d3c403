"""Re-encrypt personal data under the active key after a key rotation."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.holders.models import Cardholder, DisabilityCertificate
from cardsvc.runtime import Runtime

ACTOR = Actor.system("pii-rekey")
FIELDS = (("person_id", "person_id_enc"), ("birth_date", "birth_date_enc"),
          ("phone", "phone_enc"), ("email", "email_enc"))


def reencrypt_all(rt: Runtime, progress: Callable[[int], None] | None = None,
                  batch: int = 500) -> int:
    """Rewrite every ciphertext not under the active key; batches commit separately, so an
    interrupted run simply continues where it stopped when started again."""
    pii = rt.keys.pii
    done, last = 0, 0
    while True:
        with unit_of_work(rt.sessions) as db:
            # The work's context (what commits on its behalf, such as libraries' feeds, needs
            # the keys): the records do not change, only their ciphertext.
            rt.ctx(db, ACTOR)
            rows = db.scalars(select(Cardholder).where(Cardholder.id > last)
                              .order_by(Cardholder.id).limit(batch)).all()
            if not rows:
                break
            for h in rows:
                for field, attr in FIELDS:
                    value = getattr(h, attr)
                    if value and pii.key_id(value) != pii.active:
                        setattr(h, attr, pii.encrypt(field, pii.decrypt(field, value)))
                certs = db.scalars(select(DisabilityCertificate)
                                   .where(DisabilityCertificate.cardholder_id == h.id))
                for c in certs:
                    if pii.key_id(c.certificate_no_enc) != pii.active:
                        c.certificate_no_enc = pii.encrypt(
                            "certificate_no", pii.decrypt("certificate_no", c.certificate_no_enc))
            last = rows[-1].id
            done += len(rows)
        if progress:
            progress(len(rows))
    return done
