"""newswire: event-driven syndication and wire feeds for news agencies."""

__version__ = "0.1.0"
