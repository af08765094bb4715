"""The NewsML-G2 drop folder: every article version as a newsItem file, the way wire clients
pick stories up by FTP/SFTP.

Each event becomes ``<root>/YYYY/MM/DD/<article_id>_v<version>.xml`` (the date of the
version, UTC). A file appears whole or not at all: it is written to a dot-named temporary
file in the same directory, fsynced, renamed into place and the directory fsynced; temporary
files a crash left behind are removed at start. Kills and withdrawals are written too (their
newsItem says ``stat:canceled`` / ``stat:withheld``); embargoed stories are written at once,
marked with their embargo, as agencies send them to their wire clients.

A redelivered event writes the same name with the same bytes. The newest version written of
each article is kept in a small SQLite file (committed before the Kafka offsets), so an older
version arriving after a newer one is never written, and a version already handed over is
not written again after a restart. Consumer group: ``newswire-newsml`` (``NEWSWIRE_NEWSML_GROUP``
names another).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import click

from newswire import logs, metrics
from newswire.bus import Delivery, EventLoop, instance_id
from newswire.codec import ArticleEvent
from newswire.config import Settings, consumer_group
from newswire.files import remove_temp_files, write_atomically
from newswire.locks import LockHeld, hold_lock
from newswire.formats import newsml

from .view import check

log = logs.get(__name__)

#: the drop folder's Kafka consumer group, unless ``NEWSWIRE_NEWSML_GROUP`` names another
GROUP = "newswire-newsml"


def relative_path(event: ArticleEvent) -> Path:
    """``YYYY/MM/DD/<article_id>_v<version>.xml`` of an (already checked) event."""
    day = event["occurred_at"].strftime("%Y/%m/%d")
    return Path(day) / f"{event['article_id']}_v{event['version']}.xml"


class DropFolderBusy(RuntimeError):
    """Another process writes to the same drop folder."""


class DropFolder:
    """Writes article events to ``root``; :meth:`handle` and :meth:`commit` plug into an EventLoop."""

    def __init__(self, root: Path, state: Path, authority: str):
        self.authority = authority  #: the installation's id authority (Settings.authority())
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock_file = hold_lock(self.root / ".newswire-drop.lock")
        except LockHeld as exc:
            raise DropFolderBusy(f"another newswire drop folder writer (pid {exc.pid}) holds {self.root}") from None
        state.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(state, isolation_level=None)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS written (article_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                         " path TEXT NOT NULL) WITHOUT ROWID")
        self._pending: dict[str, tuple[int, str]] = {}
        self.written = self.skipped = 0
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        for temp in remove_temp_files(self.root):
            log.warning("drop_temp_removed", path=str(temp))

    def _committed(self, article_id: str) -> int:
        row = self._db.execute("SELECT version FROM written WHERE article_id = ?", (article_id,)).fetchone()
        return row[0] if row else 0

    def handle(self, delivery: Delivery) -> None:
        event = delivery.event
        check(event)
        article_id, version = event["article_id"], event["version"]
        # a version at or below one already handed over (committed), or below one written in this batch
        committed, in_batch = self._committed(article_id), self._pending.get(article_id, (0, ""))[0]
        if version <= committed or version < in_batch:
            self.skipped += 1
            log.info("drop_skipped", article_id=article_id, version=version, known_version=max(committed, in_batch))
            return
        # ValueError names the field: to the dead letters
        data = newsml.news_item_bytes(event, authority=self.authority)
        path = self.root / relative_path(event)
        wrote = write_atomically(path, data)
        self._pending[article_id] = (version, str(path.relative_to(self.root)))
        self.written += wrote
        metrics.OUTPUTS_PRODUCED.labels("newsml-drop", "file").inc(wrote)
        log.info("drop_written" if wrote else "drop_unchanged", article_id=article_id, version=version,
                 event_id=event["event_id"], path=str(path))

    def commit(self) -> None:
        """Record the versions written (runs before the Kafka offsets are committed)."""
        if not self._pending:
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO written VALUES (?, ?, ?)",
                                 [(a, v, p) for a, (v, p) in self._pending.items()])
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                self._db.execute("ROLLBACK")
            raise
        self._pending.clear()

    def close(self) -> None:
        self._db.close()
        self._lock_file.close()


def state_path(settings: Settings, root: Path) -> Path:
    """Where the drop folder at ``root`` keeps what it wrote: ``<home>/newsml/drop-<hash>.sqlite3``."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return settings.home / "newsml" / f"drop-{digest}.sqlite3"


def event_loop(settings: Settings, root: Path, group_id: str | None = None) -> tuple[EventLoop, DropFolder]:
    """The drop folder's consumer, in ``group_id`` (by default ``NEWSWIRE_NEWSML_GROUP``, or :data:`GROUP`)."""
    group_id = group_id or consumer_group("NEWSML", GROUP)
    drop = DropFolder(root, state_path(settings, root), settings.authority())
    # one writer per folder (the lock): a static member, which a restart after a crash puts back at once
    return EventLoop(settings, group_id, drop.handle, before_commit=drop.commit, name="newsml-drop",
                     instance_id=instance_id(group_id, drop.root), state=drop.root), drop


@click.group("newsml")
def newsml_group() -> None:
    """NewsML-G2 delivery to wire clients."""


@newsml_group.command("drop")
@click.option("--dir", "root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Drop folder root; files go to <dir>/YYYY/MM/DD/<article_id>_v<version>.xml.")
@click.option("--idle-stop", type=float, default=None, help="Stop after this many seconds without events.")
@click.pass_context
def drop(ctx: click.Context, root: Path, idle_stop: float | None) -> None:
    """Consume the articles topic (group newswire-newsml) into a NewsML-G2 drop folder."""
    try:
        loop, folder = event_loop(ctx.find_root().obj, root)
    except DropFolderBusy as exc:
        raise click.ClickException(str(exc)) from exc
    loop.stop_on_signals()
    try:
        loop.run(idle_stop_s=idle_stop)
    finally:
        folder.close()
    click.echo(f"written={folder.written} skipped={folder.skipped} dead_lettered={loop.dead_lettered}")
