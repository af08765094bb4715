"""Sources of article events: JSON files, HTML pages, the HTTP ingest API."""
