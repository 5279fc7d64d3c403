"""Each library's feed of patron changes, written in the same transaction as the change.

Nothing in the card or cardholder code calls this: the feed watches the unit of work. After
each flush it notes which residents' cards or records changed; when the unit of work commits,
it rebuilds the record of each of their standing links and appends an event for every library
whose record differs from what that library was last sent. So an issue, a replacement (a new
card number), a lost report, a block, an expiry, a closing, a concession that ended or a name
corrected each reach every linked library once, and a top-up reaches none.

Events are numbered per library without gaps: the library's feed row is locked while its
number is taken, and a transaction that rolls back gives its numbers back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from cardsvc.cards.models import Card
from cardsvc.context import Ctx, ctx_of
from cardsvc.holders.models import Cardholder
from cardsvc.library import records
from cardsvc.library.models import EventKind, Library, LibraryEvent, LibraryFeed, LibraryLink

_TOUCHED = "cardsvc.library.touched"
CHUNK = 500  # ids per IN list (SQLite caps the parameters of one statement)
_PUBLISHED = "cardsvc.library.published"


class FeedNotifier(Protocol):
    """Told after a commit which libraries have new events (the root binds one that hands
    the webhook delivery to the workers)."""

    def notify(self, library_ids: Iterable[int]) -> None: ...


class NoNotifier:
    """No push: the libraries pull, and the beat's sweep delivers webhooks."""

    def notify(self, library_ids: Iterable[int]) -> None:
        return None


def append(ctx: Ctx, library_id: int, link: LibraryLink, kind: EventKind,
           record: dict[str, Any], cause: str, changed: list[str] | None = None
           ) -> LibraryEvent:
    """The library's next event (the record, and which of its fields changed). Locks the
    library's feed row until the commit."""
    feed = _lock_feed(ctx, library_id)
    feed.last_seq += 1
    ev = LibraryEvent(library_id=library_id, seq=feed.last_seq, event_id=str(uuid.uuid4()),
                      kind=kind.value, patron_id=link.patron_id,
                      record=records.encode(record | {"changed": changed or sorted(record)}),
                      cause=cause[:40], created_at=ctx.now)
    ctx.db.add(ev)
    link.last_record = records.encode(record)
    ctx.db.info.setdefault(_PUBLISHED, set()).add(library_id)
    return ev


def _lock_feed(ctx: Ctx, library_id: int) -> LibraryFeed:
    feed = ctx.db.get(LibraryFeed, library_id, with_for_update=True, populate_existing=True)
    if feed is None:
        feed = LibraryFeed(library_id=library_id, last_seq=0)
        ctx.db.add(feed)
        ctx.db.flush()
    return feed


def changed_fields(before: str | None, after: dict[str, Any]) -> list[str]:
    old: dict[str, Any] = json.loads(before) if before else {}
    return sorted(k for k in set(old) | set(after) if old.get(k) != after.get(k))


def _linked(db: Session, holder_ids: Iterable[int]) -> list[LibraryLink]:
    """The standing links of these residents, in library order (feed rows are locked in that
    order, so two transactions never wait for each other's feeds the other way round)."""
    ids = sorted(set(holder_ids))
    links: list[LibraryLink] = []
    for i in range(0, len(ids), CHUNK):
        links += db.scalars(select(LibraryLink).where(
            LibraryLink.live_holder_id.in_(ids[i:i + CHUNK])))
    return sorted(links, key=lambda link: (link.library_id, link.id))


def refresh(ctx: Ctx, holder_ids: Iterable[int], cause: str = "change") -> int:
    """Rebuild the records of these residents' standing links; append an event for each
    library whose record changed. Returns the number of events."""
    return _refresh(ctx, _linked(ctx.db, holder_ids), cause)


def _refresh(ctx: Ctx, links: list[LibraryLink], cause: str) -> int:
    # The libraries' feed rows first, in id order: then each record is built from what is
    # committed now, so of two changes to one resident committing at once (a lost card, a
    # name corrected) the later one's record has both, never only its own.
    for library_id in sorted({link.library_id for link in links}):
        _lock_feed(ctx, library_id)
    written = 0
    for link in links:
        ctx.db.refresh(link)
        library = ctx.db.get(Library, link.library_id)
        holder = ctx.db.get(Cardholder, link.cardholder_id, populate_existing=True)
        assert library is not None and holder is not None  # noqa: S101 - foreign keys
        if link.live_holder_id is None:
            continue  # unlinked meanwhile
        record = records.build(library, link, holder,
                               records.current_card(ctx.db, holder.id, fresh=True),
                               ctx.keys, ctx.today)
        changed = changed_fields(link.last_record, record)
        if changed:
            append(ctx, library.id, link, EventKind.PATRON, record, cause, changed)
            written += 1
    return written


@event.listens_for(Session, "after_flush")
def _note_changes(db: Session, _flush_context: Any) -> None:
    touched: set[int] = set()
    for obj in (*db.new, *db.dirty):
        if isinstance(obj, Card):
            touched.add(obj.cardholder_id)
        elif isinstance(obj, Cardholder) and obj.id is not None:
            touched.add(obj.id)
    if touched:
        db.info.setdefault(_TOUCHED, set()).update(touched)


# Ahead of the audit trail's own before_commit (insert=True): a feed row is then always locked
# before the audit chain's head, in every transaction (a webhook delivery locks the feed row
# and writes an audit row too); the other order deadlocked the two.
@event.listens_for(Session, "before_commit", insert=True)
def _publish(db: Session) -> None:
    if db.in_nested_transaction():
        return
    db.flush()
    touched = db.info.pop(_TOUCHED, None)
    if not touched:
        return
    if not db.scalar(select(LibraryLink.id).limit(1)):
        return  # no library is linked at all: nothing to do for any change
    links = _linked(db, touched)
    if not links:
        return
    ctx = ctx_of(db)
    if ctx is None:
        raise RuntimeError("a linked resident's card changed outside a service context: "
                           "the library feed cannot build the record")
    _refresh(ctx, links, "change")
    db.flush()
    db.info.pop(_TOUCHED, None)  # what the feed itself wrote is not a change of a patron


@event.listens_for(Session, "after_commit")
def _notify(db: Session) -> None:
    if db.in_nested_transaction():
        return  # a savepoint was released: the transaction goes on
    published = db.info.pop(_PUBLISHED, None)
    ctx = ctx_of(db)
    if published and ctx is not None:
        notifier: FeedNotifier = ctx.services.find_or(FeedNotifier, NoNotifier())
        notifier.notify(sorted(published))


@event.listens_for(Session, "after_rollback")
def _forget(db: Session) -> None:
    if db.in_nested_transaction():
        return  # a savepoint rolled back (a retried insert): the transaction's changes stand
    db.info.pop(_TOUCHED, None)
    db.info.pop(_PUBLISHED, None)
