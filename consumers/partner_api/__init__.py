"""The partner API: a partner's own HTTP server (on this branch only its pull transport,
:mod:`.changes`; the rest, with its authentication, is the partner-api branch's)."""
