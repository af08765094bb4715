"""outbox.enqueue writes a batch's bodies in one batch (dialect ``insert_ids``): each delivery
points at its own event's body, a body shared by partners is kept once, and ids never repeat
across batches, also after bodies were deleted (retention) and while another writer queues."""

from __future__ import annotations

from newswire.consumers.webhooks import outbox, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import parse_cidrs
from newswire.consumers.webhooks.signing import new_secret
from tests.conftest import on_both_stores


def _rows(partners: list[str], events: range) -> tuple[list[outbox.Queued], outbox.Events]:
    rows, kept = [], {}
    for n in events:
        body = (f'{{"event":{n},"sequence":'.encode(), b"}")  # one object per event: shared by its partners
        kept[f"e{n}"] = (f"a{n}", 1, "published", b"avro")
        rows += [outbox.Queued(p, f"e{n}", f"a{n}", 1, "published", "application/json", 0.0, body) for p in partners]
    return rows, kept


@on_both_stores
def test_each_delivery_gets_its_own_events_body_once_per_event_and_ids_never_repeat(settings):
    db = store.connect(settings)
    try:
        for partner in ("acme", "beta"):
            registry.add(db, registry.Partner(id=partner, name=partner, url="http://127.0.0.1:9/hook",
                                              secrets=(new_secret(),)), allow=parse_cidrs("127.0.0.0/8"))
        first = outbox.enqueue(db, *_rows(["acme", "beta"], range(0, 300)))
        other = store.connect(settings)  # another writer queues between the two batches
        try:
            outbox.enqueue(other, *_rows(["beta"], range(300, 310)))
        finally:
            other.close()
        (deleted,) = db.execute("SELECT id FROM bodies WHERE event_id = 'e309'").fetchone()
        db.execute("DELETE FROM deliveries WHERE event_id = 'e309'")
        db.execute("DELETE FROM bodies WHERE event_id = 'e309'")  # the newest body gone (as retention does)
        second = outbox.enqueue(db, *_rows(["acme"], range(310, 320)))

        (bodies,) = db.execute("SELECT count(*) FROM bodies").fetchone()
        assert bodies == 300 + 9 + 10
        for row in first + second:
            delivery = db.execute("SELECT id FROM deliveries WHERE partner_id = ? AND seq = ?",
                                  (row.partner_id, row.seq)).fetchone()[0]
            event = int(row.event_id[1:])
            assert outbox.payload(db, delivery) == f'{{"event":{event},"sequence":{row.seq}}}'.encode()
        ids = [i for (i,) in db.execute("SELECT body_id FROM deliveries WHERE event_id IN ('e0', 'e310', 'e319')"
                                        " ORDER BY body_id")]
        assert ids[0] == ids[1] and len(set(ids)) == 3  # e0's body shared by acme and beta
        (after,) = db.execute("SELECT min(id) FROM bodies WHERE event_id = 'e310'").fetchone()
        assert after > deleted  # the deleted body's id is never given to another body
    finally:
        db.close()
