"""The archive: every article event stored exactly once, durably, and read back by article.

- :mod:`.archiver`: the consumer (group ``newswire-archive``) that writes it;
- :mod:`.segments`: Avro object container files, one block per commit;
- :mod:`.index`: the SQLite index (article → versions → file and block; Kafka position);
- :mod:`.storage`: where the files live (local filesystem; see docs/archive.md for S3);
- :mod:`.reader`: get, list, verify, and events of a window for replay;
- :mod:`.cli`: ``newswire archive``.
"""
