"""A test event: one signed POST to the partner's endpoint now, to check its receiver.

Like GitHub's ``ping`` and Svix's test message it is not a story and takes no sequence
number (no ``newswire-sequence`` header, nothing in the outbox, no receipt): a JSON body
``{"type": "newswire.test", …}`` with a ``webhook-id`` of its own (``test_…``), signed with
every current signing secret as deliveries are, sent through the pusher's SSRF guard. The
caller gets the partner's answer (status, error, duration) at once. A drop-folder partner
gets none.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from newswire.consumers.webhooks import delivery, signing, transports
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.partners import Partner

TYPE = "newswire.test"


def body(partner: Partner, at: datetime) -> bytes:
    return json.dumps({"type": TYPE, "timestamp": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
                       "data": {"partner": partner.id,
                                "message": "A test event from the partner API: not a story; answer 2xx."}},
                      separators=(",", ":")).encode()


async def send(partner: Partner, config: WebhookConfig) -> dict:
    """Send one test event; what the partner answered."""
    if transports.kind(partner.url) is not transports.HttpTransport:
        raise ValueError("url: a drop-folder partner gets no test event (nothing answers a file)")
    at = datetime.now(timezone.utc)
    event_id, payload = f"test_{uuid.uuid4().hex}", body(partner, at)
    allow = partner.allowed(config.allow_cidrs)
    transport = transports.HttpTransport(config)
    try:
        transport.allow_host(partner.url, allow)
        headers = signing.headers(event_id, payload, partner.signing_secrets(at.timestamp()),
                                  content_type="application/json", at=at)
        answer = await delivery.post(transport.client, partner.url, payload, headers, allow=allow,
                                     timeout_s=config.timeout_s)
    finally:
        await transport.close()
    return {"webhook_id": event_id, "delivered": answer.ok, "status": answer.status, "error": answer.error,
            "duration_ms": round(answer.duration_ms, 1)}
