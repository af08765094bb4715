"""The partner API: a partner's own HTTP server, apart from the operator's status page.

Each partner signs in with its own tokens (:mod:`.tokens`), sees only its own deliveries,
receipts, gaps and audit log, and asks for what it missed (resend, backfill), pauses its
pushes, rotates its signing secret and its token, and sends itself a test event
(:mod:`.service`), and takes its deliveries by pull instead of push (:mod:`.changes`). ``/v1/*``
is JSON for programs (:mod:`.handlers`, :mod:`.changes`); ``/`` is a page for people over the same
operations (:mod:`.page`). Every call is audited (:mod:`.audit`).
"""
