"""Sections of the status page that the parts provide: partners' health, the latest deliveries
and the kill report (from the webhook state), and replays in progress (their checkpoints)."""

from __future__ import annotations

import json
from typing import Any, Callable

from newswire.config import Settings
from newswire.consumers.webhooks import partner_state, receipts
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.status import lookup

Section = Callable[[], Any]


def state_query(settings: Settings, read: Callable[[Any], Any]) -> Section:
    """A section read from the webhook state file ([] while there is none)."""
    def section() -> Any:
        db = lookup.state_db(settings)
        if db is None:
            return []
        try:
            return read(db)
        finally:
            db.close()
    return section


def partner_states(settings: Settings, config: WebhookConfig) -> Callable[[], list[partner_state.PartnerState]]:
    """Every partner's queue, retries, dead deliveries, gaps and breaker (the status gauges)."""
    return state_query(settings, lambda db: partner_state.partner_states(db, config))


def webhook_sections(settings: Settings) -> dict[str, Section]:
    def deliveries(db) -> list[dict]:
        return [{"at": receipts.iso_time(r["at"]), "partner": r["partner_id"], "article_id": r["article_id"],
                 "version": r["version"], "attempt": r["attempt"], "status": r["status_code"] or r["outcome"],
                 "duration_ms": r["duration_ms"], "error": r["error"]}
                for r in receipts.attempts(db, limit=20)]

    def kills(db) -> list[dict]:
        return [{"article_id": r["article_id"], "partner": r["partner_id"], "delivered": r["status"] == "delivered",
                 "at": receipts.iso_time(r["delivered_at"])} for r in receipts.kill_report(db)]

    return {name: state_query(settings, read)
            for name, read in (("partners", receipts.health), ("deliveries", deliveries), ("kills", kills))}


def replay_section(settings: Settings) -> Section:
    """Replays with a checkpoint: running, or interrupted and resumable (a finished one removes it)."""
    def section() -> list[dict]:
        rows = []
        for path in sorted((settings.home / "replay").glob("*.json")):
            saved = json.loads(path.read_text())
            params = saved.get("params", {})
            rows.append({"replay": path.stem,
                         "target": " ".join(f"{k}={v}" for k, v in sorted(params.items()) if v is not None),
                         "done": sum(saved.get("outcomes", {}).values()),
                         "state": f"checkpoint {saved.get('saved_at', '?')}"})
        return rows
    return section


def standard_sections(settings: Settings) -> dict[str, Section]:
    return {**webhook_sections(settings), "replays": replay_section(settings)}
