"""Errors the detection library raises on purpose (anything else is a bug or an environment problem)."""

from __future__ import annotations


class MediaError(Exception):
    """The media cannot be analysed: unreadable, corrupt, unsupported or too large.

    `str(exc)` is a short, user-facing reason; the platform shows it verbatim on a failed scan.
    """


class ModelError(Exception):
    """A weights file or its settings are missing, corrupt or do not fit the code loading them."""
