"""Where replayed events go. One partner: through the normal delivery path of the webhooks
part (its outbox), so the partner gets the same rendering, signing, per-article order,
retries and receipts as live pushes, and nothing of any consumer group moves.

For each replayed event the partner:

- has pending: nothing to do (``pending``);
- has a newer version of its article (delivered or queued), or the kill of its article
  when this is not that kill: nothing, so a partner never gets an older version after a
  newer one, nor anything after a kill (``superseded``);
- already got (a delivered or dead delivery of that event id): a NEW delivery with the
  partner's next sequence number and the original webhook-id (the event id) and body (the
  same event, rendered again only because the number is part of the payload): the sequence
  number is the partner's transmission counter, the webhook-id its idempotency key
  (``re-sent``);
- has of an article that is killed or withdrawn now (its ending is anywhere in the log, in
  the window or after it): a partner that never had the story gets nothing of it, neither a
  version nor the kill (``withheld: killed``), as live kills only go to partners that had the
  story; a partner that had a version gets the kill instead of any other version
  (``kill sent instead``), so a killed story's text never reaches anyone who did not have it;
- never had: the partner's subscription decides (:func:`~newswire.consumers.webhooks.filters.decide`,
  as for live events); a delivery is queued with the partner's next sequence number
  (``queued``) or not (``not for partner``).

Only ``newswire deliveries resend --seq`` sends deliveries again under their original numbers.

Sequence numbers are taken inside the transaction that queues a batch. There the batch is
checked again against what the pusher queued for the partner since it was read (a newer
version, a kill, the same event): what that supersedes is dropped, and the rest is
renumbered (and re-rendered) from the partner's current next number, so numbers stay
gapless and unique whoever queues, and the order rule holds.

The running pusher (``newswire webhooks run``) delivers what the replay queued; with
``send=True`` the replay delivers it itself through the pusher's own worker for that
partner (when the pusher is not running, and in tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from newswire import logs
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.loop_thread import LoopThread
from newswire.consumers.webhooks import outbox, payloads, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.filters import History, decide
from newswire.consumers.webhooks.pusher import PartnerWorker, Pusher

from .sources import Item

log = logs.get(__name__)


class Target(Protocol):
    name: str

    def offer(self, item: Item) -> str:
        """Take one event; return what happened to it (a short label counted in the summary)."""

    def commit(self) -> None:
        """Make everything offered so far durable (before the checkpoint moves past it)."""

    def close(self) -> None: ...


@dataclass
class _New:
    event_id: str
    article_id: str
    version: int
    event_type: str
    seq: int
    payload: bytes
    avro: bytes
    due: float
    event: ArticleEvent
    at: datetime


@dataclass(frozen=True)
class _Article:
    """What the partner has of one article: ``history`` (every delivery, for the
    subscription's rules) and ``newest`` / ``killed`` (only what it received or has queued:
    what the order rule protects)."""

    history: History
    newest: int | None
    killed: bool

    def supersedes(self, version: int) -> bool:
        """Sending this version would put it after a newer one, or after the kill."""
        return self.newest is not None and (version < self.newest or (self.killed and version > self.newest))


#: the summary's name for an ending sent in place of a version of its article
_NOTICE = {"killed": "kill", "withdrawn": "withdrawal"}

_ARTICLE = ("SELECT max(version), max(CASE WHEN event_type = 'killed' THEN 1 ELSE 0 END),"
            " max(CASE WHEN status != 'dead' THEN version END),"
            " max(CASE WHEN status != 'dead' AND event_type = 'killed' THEN 1 ELSE 0 END)"
            " FROM deliveries WHERE partner_id = ? AND article_id = ?")


def _article(row: tuple) -> _Article:
    version, killed, newest, newest_killed = row
    return _Article(History(max_version=version, killed=bool(killed)), newest, bool(newest_killed))


class PartnerTarget:
    """Queues replayed events for one partner in the webhooks outbox (nothing when ``dry_run``)."""

    def __init__(self, settings: Settings, partner_id: str, *, dry_run: bool = False, missed_only: bool = False):
        """``missed_only``: events the partner already got are not sent again (``already sent``),
        for catching up a partner that was disabled."""
        #: the source's :meth:`~.sources.Source.endings` (article id → its kill or withdrawal,
        #: anywhere in the log), set before the first offer
        self.endings: dict[str, Item] = {}
        self.missed_only = missed_only
        self.authority = settings.authority()
        self.db = store.connect(settings, synchronous="FULL")
        try:
            self.partner = registry.get(self.db, partner_id)
        except registry.UnknownPartner:
            self.db.close()
            raise
        self.name = f"partner {partner_id}"
        self.dry_run = dry_run
        self._new: list[_New] = []
        #: event ids this batch queued (not yet in the file; a dry run keeps them all)
        self._batch: set[str] = set()
        self._articles: dict[str, _Article] = {}
        self._next_seq: int | None = None
        self.queued_ids: list[str] = []

    def _status(self, event_id: str) -> str | None:
        """``pending``, ``had`` (delivered or dead, never pending) or None (never queued)."""
        if event_id in self._batch:
            return "pending"
        pending, rows = self.db.execute("SELECT max(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), count(*) FROM deliveries"
                                        " WHERE partner_id = ? AND event_id = ?",
                                        (self.partner.id, event_id)).fetchone()
        return "pending" if pending else ("had" if rows else None)

    def _article(self, article_id: str) -> _Article:
        if article_id not in self._articles:
            self._articles[article_id] = _article(self.db.execute(_ARTICLE, (self.partner.id, article_id)).fetchone())
        return self._articles[article_id]

    def offer(self, item: Item) -> str:
        event = item.event
        event_id, article_id, version = str(event["event_id"]), event["article_id"], event["version"]
        status = self._status(event_id)
        if status == "pending":
            return "pending"
        if status == "had" and self.missed_only:
            return "already sent"
        article = self._article(article_id)
        if article.supersedes(version):
            return "superseded"
        ending = self.endings.get(article_id)
        if ending is not None and ending.event["event_id"] != event_id:
            if article.newest is not None and self.offer(ending) in ("queued", "re-sent"):
                return f"{_NOTICE[ending.event['event_type']]} sent instead"
            log.info("replay_withheld", partner=self.partner.id, article_id=article_id, version=version,
                     event_id=event_id, ended_by=ending.event["event_type"], ended_version=ending.event["version"])
            return f"withheld: {ending.event['event_type']}"
        now = datetime.now(timezone.utc)
        due = now
        if status is None:
            decision = decide(self.partner.subscription, event, article.history, enabled=self.partner.enabled, now=now)
            if not decision.deliver:
                return "not for partner"
            due = decision.not_before or now
        if self._next_seq is None:
            self._next_seq = self.db.execute("SELECT next_seq FROM partners WHERE id = ?",
                                             (self.partner.id,)).fetchone()[0]
        seq = self._next_seq
        try:
            body = payloads.render(event, self.partner.format, seq=seq, at=now, authority=self.authority)
        except ValueError as exc:  # as the live path dead-letters it, the replay skips it, saying why
            log.warning("replay_unrenderable", partner=self.partner.id, article_id=article_id,
                        version=version, event_id=event_id, reason=str(exc))
            return "unrenderable"
        self._next_seq += 1
        self._new.append(_New(event_id, article_id, version, event["event_type"], seq, body, item.payload,
                              due.timestamp(), event, now))
        self._batch.add(event_id)
        killed = event["event_type"] == "killed"
        self._articles[article_id] = _Article(
            History(max_version=max(version, article.history.max_version or version),
                    killed=article.history.killed or killed), version, killed)
        return "queued" if status is None else "re-sent"

    def commit(self) -> None:
        if self.dry_run:  # keep what the run "queued" so far: later decisions depend on it
            self._new.clear()
            return
        if not self._new:
            self._forget()
            return
        now = time.time()
        with outbox.transaction(self.db) as db:
            new = [n for n in self._new if not self._taken_meanwhile(db, n)]
            first = db.execute(f"SELECT next_seq FROM partners WHERE id = ?{db.for_update}",
                               (self.partner.id,)).fetchone()[0]
            for number, n in enumerate(new):  # the pusher may have queued for this partner meanwhile
                if n.seq != first + number:
                    n.seq = first + number
                    n.payload = payloads.render(n.event, self.partner.format, seq=n.seq, at=n.at,
                                                authority=self.authority)
            db.execute("UPDATE partners SET next_seq = ? WHERE id = ?", (first + len(new), self.partner.id))
            db.executemany("INSERT INTO events (event_id, article_id, version, event_type, avro)"
                           " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           [(n.event_id, n.article_id, n.version, n.event_type, n.avro) for n in new])
            db.executemany(
                "INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq,"
                " content_type, payload, status, next_attempt_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                [(self.partner.id, n.event_id, n.article_id, n.version, n.event_type, n.seq,
                  self.partner.content_type, n.payload, n.due, now) for n in new])
        self.queued_ids += [n.event_id for n in new]
        log.info("replay_queued", partner=self.partner.id, queued=len(new),
                 seq_from=new[0].seq if new else None, seq_to=new[-1].seq if new else None)
        self._forget()

    def _taken_meanwhile(self, db, new: _New) -> bool:
        """Whether the pusher queued, since this batch was read, this event or what supersedes it
        (checked inside the queueing transaction, so the order rule holds whoever queues)."""
        pending = db.execute("SELECT 1 FROM deliveries WHERE partner_id = ? AND event_id = ? AND status = 'pending'",
                             (self.partner.id, new.event_id)).fetchone()
        if pending is None and not _article(db.execute(_ARTICLE, (self.partner.id, new.article_id)).fetchone()
                                            ).supersedes(new.version):
            return False
        log.warning("replay_superseded_meanwhile", partner=self.partner.id, article_id=new.article_id,
                    version=new.version, event_id=new.event_id)
        return True

    def _forget(self) -> None:
        self._new.clear()
        self._batch.clear()
        self._articles.clear()
        self._next_seq = None

    def pending(self, event_ids: list[str]) -> int:
        """How many of these deliveries to the partner are still pending."""
        count = 0
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start:start + 500]
            count += self.db.execute(
                f"SELECT count(*) FROM deliveries WHERE partner_id = ? AND status = 'pending'"
                f" AND event_id IN ({','.join('?' * len(chunk))})", (self.partner.id, *chunk)).fetchone()[0]
        return count

    def close(self) -> None:
        self.db.close()


class PartnerSender:
    """Delivers one partner's pending deliveries from this process with the pusher's own worker.

    Runs an asyncio loop in a thread; :meth:`wake` after each commit. Use it only while the
    pusher service is stopped (or the partner would get some deliveries twice, with the same
    webhook-id).
    """

    def __init__(self, settings: Settings, partner_id: str, config: WebhookConfig | None = None):
        self.config = config or WebhookConfig.from_env()
        self._worker: PartnerWorker | None = None
        self.error: BaseException | None = None
        started = threading.Event()
        self._thread = LoopThread(lambda stop: self._serve(settings, partner_id, stop, started),
                                  name=f"replay-send-{partner_id}")
        started.wait()
        if self.error:
            raise self.error

    async def _serve(self, settings: Settings, partner_id: str, stop: asyncio.Event,
                     started: threading.Event) -> None:
        pusher = Pusher(settings, self.config)
        try:
            try:
                worker = self._worker = PartnerWorker(pusher, registry.get(pusher.db, partner_id))
            except BaseException as exc:  # an unknown partner: said to the caller at once
                self.error = exc
                raise
            finally:
                started.set()
            worker.task = asyncio.create_task(worker.run())
            await stop.wait()
            await worker.close()
        finally:
            pusher.dead_letters.close()
            pusher.db.close()

    def wake(self) -> None:
        self._thread.call_soon(lambda: self._worker and self._worker.wake.set())

    def stop(self) -> None:
        self._thread.stop()


