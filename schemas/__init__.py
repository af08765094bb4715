"""Avro schemas of the article event contract, versioned (article_event.vN.avsc)."""
