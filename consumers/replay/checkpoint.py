"""Resumable replays: the next offset to replay per partition, saved after each durable step.

The file lives under ``<home>/replay/`` and is named by a hash of the replay's parameters
as the operator gave them (source, target, ``--since``/``--until`` as typed, topic), so
running the same command again after an interruption resumes it, over the window it
resolved the first time (``--since 7d`` means the same instants on resume), and any other
replay starts afresh. It is removed when the replay completes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path


@dataclass
class Checkpoint:
    path: Path
    params: dict
    #: the window in ms ``[since, until)`` as first resolved
    window: tuple[int | None, int | None] | None = None
    #: partition → next offset to replay
    next: dict[int, int] = field(default_factory=dict)
    #: outcome label → count, over every run of this replay
    outcomes: dict[str, int] = field(default_factory=dict)
    resumed: bool = False

    @classmethod
    def open(cls, home: Path, params: dict, *, restart: bool = False) -> "Checkpoint":
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(home) / "replay" / f"{key}.json"
        if path.exists() and not restart:
            saved = json.loads(path.read_text())
            return cls(path, params, tuple(saved["window"]), {int(p): o for p, o in saved["next"].items()},
                       saved.get("outcomes", {}), resumed=True)
        return cls(path, params)

    def save(self) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fo:
            json.dump({"params": self.params, "window": self.window, "next": self.next, "outcomes": self.outcomes,
                       "saved_at": datetime.now(timezone.utc).isoformat()}, fo, indent=1)
            fo.flush()
            os.fsync(fo.fileno())
        os.replace(tmp, self.path)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)
