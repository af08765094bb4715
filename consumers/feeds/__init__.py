"""The feeds consumer and feed server: a materialised view of the articles topic, served as
RSS, Atom, NewsML-G2 and ninjs feeds, single items and a wire-ingest "changes since" cursor;
and the NewsML-G2 drop folder. See docs/feeds.md.
"""
