"""Errors meant for an operator: the message is the whole story, in one line."""

from __future__ import annotations


class Refused(RuntimeError):
    """newswire will not act on this state or request; any command ends with the message, exit 1."""
