"""Progress lines for long management commands (one line every few seconds, with rate and time left)."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressPrinter:
    """Writes `label: done/total (pct) rate/s, ETA` at most every `every_s` seconds and at the end."""

    def __init__(self, stream: TextIO, *, label: str, every_s: float = 5.0) -> None:
        self.stream = stream
        self.label = label
        self.every_s = every_s
        self.started = time.monotonic()
        self.last_printed = 0.0
        self.last_line = ""

    def update(self, done: int, total: int, item: str = "") -> None:
        now = time.monotonic()
        if done < total and now - self.last_printed < self.every_s:
            return
        self.last_printed = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        remaining = (total - done) / rate if rate > 0 else 0.0
        percent = 100.0 * done / total if total else 100.0
        self.last_line = (
            f"{self.label}: {done}/{total} ({percent:.0f}%) {rate:.1f}/s, ~{remaining:.0f} s left {item}".rstrip()
        )
        # Django's OutputWrapper ends lines itself; a plain stream (stderr under --json) needs the newline.
        self.stream.write(self.last_line if hasattr(self.stream, "ending") else self.last_line + "\n")
        if hasattr(self.stream, "flush"):
            self.stream.flush()

    def finish(self) -> None:
        """Nothing to close; kept so callers mark the end of a phase explicitly."""
        self.last_printed = 0.0
