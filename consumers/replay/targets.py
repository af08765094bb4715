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
  same event; the number is put in when it goes): the sequence
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

The deliveries are written by the outbox's one writer,
:func:`~newswire.consumers.webhooks.outbox.enqueue`, as the live path's are: it takes the
sequence numbers inside the transaction that queues a batch, and there the batch is checked
again (``keep``) against what the pusher queued for the partner since it was read (a newer
version, a kill, the same event): what that supersedes is dropped, so numbers stay gapless
and unique whoever queues, and the order rule holds. The running pusher (``newswire webhooks run``) delivers what the
replay queued; with ``--send`` the replay delivers it itself through the pusher's own
dispatcher for that partner, as its one sender, in a process of its own
(:class:`~.sender.PartnerSender`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Protocol

from newswire import logs
from newswire.config import Settings
from newswire.consumers.webhooks import outbox, payloads, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.filters import History, decide
from newswire.formats.kept import Renders

from .readahead import Prerender
from .sources import Item

log = logs.get(__name__)


class Target(Protocol):
    name: str

    @property
    def prerender(self) -> Prerender | None:
        """What a :class:`~.readahead.ReadAhead` renders each event in for this target (None:
        nothing, as a dry run)."""

    def prefetch(self, items: list[Item]) -> None:
        """Read at once what the offers of ``items`` (the next ones, in order) will look up."""

    def offer(self, item: Item) -> str:
        """Take one event; return what happened to it (a short label counted in the summary)."""

    def commit(self) -> None:
        """Make everything offered so far durable (before the checkpoint moves past it)."""

    def close(self) -> None: ...


#: bytes of renders a replay keeps
RENDERS_KEPT = 4 * 1024 * 1024

#: the summary's name for an ending sent in place of a version of its article
_NOTICE = {"killed": "kill", "withdrawn": "withdrawal"}


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
        #: the renders kept by replays and the live pusher (a backfill renders nothing rendered before in its format)
        self.kept = payloads.kept_renders(settings)
        #: a replay renders each event once for its partner: what it keeps of them is small
        #: (an ending offered in place of its versions), not the process's kept renders
        self.renders = Renders(self.authority, max_bytes=RENDERS_KEPT)
        self.db = store.connect(settings, synchronous="FULL")
        try:
            self.partner = registry.get(self.db, partner_id)
        except registry.UnknownPartner:
            self.db.close()
            raise
        self.name = f"partner {partner_id}"
        self.dry_run = dry_run
        self._new: list[outbox.Queued] = []
        self._events: outbox.Events = {}
        #: event ids this batch queued (not yet in the file; a dry run keeps them all)
        self._batch: set[str] = set()
        self._articles: dict[str, outbox.ArticleState] = {}
        #: the statuses of the prefetched events (a missing one: never queued)
        self._statuses: dict[str, str] = {}
        self._prefetched: set[str] = set()
        self.queued_ids: list[str] = []

    @property
    def prerender(self) -> Prerender | None:
        """What a :class:`~.readahead.ReadAhead` renders each event in for this target (None: a dry
        run, which renders nothing)."""
        return None if self.dry_run else Prerender(self.partner.format, self.authority, self.kept)

    def prefetch(self, items: list[Item]) -> None:
        """The statuses of ``items``' events and the states of their articles (and endings) in
        a few queries, instead of two per offer."""
        ids = [str(item.event["event_id"]) for item in items]
        self._statuses.update(outbox.event_statuses(self.db, self.partner.id, ids))
        self._prefetched.update(ids)
        articles = {item.event["article_id"] for item in items} - self._articles.keys()
        endings = [self.endings[a] for a in articles if a in self.endings]
        ending_ids = [str(e.event["event_id"]) for e in endings]
        self._statuses.update(outbox.event_statuses(self.db, self.partner.id, ending_ids))
        self._prefetched.update(ending_ids)
        self._articles.update(outbox.article_states(self.db, self.partner.id, sorted(articles)))

    def _status(self, event_id: str) -> str | None:
        """``pending``, ``had`` (delivered or dead, never pending) or None (never queued)."""
        if event_id in self._batch:
            return "pending"
        if event_id in self._prefetched:
            return self._statuses.get(event_id)
        return outbox.event_status(self.db, self.partner.id, event_id)

    def _article(self, article_id: str) -> outbox.ArticleState:
        if article_id not in self._articles:
            self._articles[article_id] = outbox.article_state(self.db, self.partner.id, article_id)
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
        try:
            body = self._body(item, now)
        except ValueError as exc:  # as the live path dead-letters it, the replay skips it, saying why
            log.warning("replay_unrenderable", partner=self.partner.id, article_id=article_id,
                        version=version, event_id=event_id, reason=str(exc))
            return "unrenderable"
        self._new.append(outbox.Queued(self.partner.id, event_id, article_id, version, event["event_type"],
                                       self.partner.content_type, due.timestamp(), body))
        self._events[event_id] = (article_id, version, event["event_type"], item.payload)
        self._batch.add(event_id)
        killed = event["event_type"] == "killed"
        self._articles[article_id] = outbox.ArticleState(
            History(max_version=max(version, article.history.max_version or version),
                    killed=article.history.killed or killed), version, killed)
        return "queued" if status is None else "re-sent"

    def _body(self, item: Item, now: datetime) -> tuple[bytes, bytes | None]:
        """The event's body in the partner's format: as rendered ahead (:mod:`.readahead`), or now."""
        ahead = (item.rendered or {}).get(self.partner.format)
        if isinstance(ahead, str):
            raise ValueError(ahead)
        if ahead is not None:
            return ahead
        return payloads.Renderer(item.event, at=now, authority=self.authority,
                                 renders=self.renders).parts(self.partner.format)

    def commit(self) -> None:
        if self.dry_run:  # keep what the run "queued" so far: later decisions depend on it
            self._new.clear()
            return
        new = outbox.enqueue(self.db, self._new, self._events, keep=self._still_wanted()) if self._new else []
        self.queued_ids += [n.event_id for n in new]
        if new:
            log.info("replay_queued", partner=self.partner.id, queued=len(new), seq_from=new[0].seq,
                     seq_to=new[-1].seq)
        self._forget()

    def _still_wanted(self) -> Callable[[outbox.Db, outbox.Queued], bool]:
        """The ``keep`` of this batch's :func:`~outbox.enqueue`: whether the pusher queued, since
        the batch was read, neither the event nor what supersedes it (checked inside the
        queueing transaction, so the order rule holds whoever queues; read there for the whole
        batch at once)."""
        states: dict[str, dict] = {}

        def keep(db: outbox.Db, new: outbox.Queued) -> bool:
            if not states:
                states["events"] = outbox.event_statuses(db, self.partner.id, [n.event_id for n in self._new])
                states["articles"] = outbox.article_states(db, self.partner.id,
                                                           sorted({n.article_id for n in self._new}))
            if (states["events"].get(new.event_id) != "pending"
                    and not states["articles"][new.article_id].supersedes(new.version)):
                return True
            log.warning("replay_superseded_meanwhile", partner=self.partner.id, article_id=new.article_id,
                        version=new.version, event_id=new.event_id)
            return False

        return keep

    def _forget(self) -> None:
        self._new.clear()
        self._events.clear()
        self._batch.clear()
        self._articles.clear()
        self._statuses.clear()
        self._prefetched.clear()

    def pending(self, event_ids: list[str]) -> int:
        """How many of these deliveries to the partner are still pending."""
        return outbox.pending_among(self.db, self.partner.id, event_ids)

    def close(self) -> None:
        self.db.close()
