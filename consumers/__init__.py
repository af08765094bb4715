"""Consumers of article events: feeds, NewsML-G2, partner webhooks, archive."""
