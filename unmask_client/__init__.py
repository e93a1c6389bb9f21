"""Unmask's command-line client: scan files and read results through the HTTP API (standard library only).

Run it with `python -m unmask_client --help`; see `unmask_client.cli` for the commands and exit codes.
"""

from __future__ import annotations

__all__ = ["ApiError", "UnmaskApi"]

from unmask_client.api import ApiError, UnmaskApi
