"""Partner push: signed Standard Webhooks deliveries of article events to partner outlets.

The pieces, each in its own module:

- :mod:`.config`     retry schedule, timeouts, circuit breaker and SSRF allowlist from ``NEWSWIRE_WEBHOOK_*``
- :mod:`.store`      the SQLite state file (registry, outbox, receipts) under ``settings.home``
- :mod:`.partners`   the partner registry operators manage with ``newswire partners ...``
- :mod:`.filters`    pure: which events a partner gets
- :mod:`.outbox`     durable deliveries: enqueue (the one writer), read what is pending, record attempts
- :mod:`.payloads`   the body of a delivery in the partner's format (the formats' renderers)
- :mod:`.signing`    the Standard Webhooks headers
- :mod:`.ssrf`       refuse endpoints on private, loopback, metadata, ... addresses
- :mod:`.policy`     retry backoff with jitter, ``Retry-After``, circuit breaker, rate limit
- :mod:`.delivery`   one HTTP attempt and its outcome, timed so that the timeout measures the partner
- :mod:`.transports` how a delivery goes, chosen by the endpoint's URL scheme (http/https, file)
- :mod:`.pusher`     the asyncio side: one dispatcher and its in-memory schedule for every
  partner; the Kafka consume loop in a thread
- :mod:`.cli`        ``newswire partners``, ``newswire deliveries``, ``newswire webhooks``
- :mod:`.demo_partner` a tiny partner endpoint that verifies signatures and prints what it gets
"""
