"""Structured logs: every log line written while a scan's job runs carries that scan's id.

`ScanIdFilter` (attached to the console handler in settings.LOGGING) sets `record.scan_id` from, in order:
the scan id bound with `scan_log_context` / `@with_scan_log_context` (the analysis and webhook jobs), the
RQ job running in this worker process (so RQ's own "job started / OK" lines carry it too), or "-".
`JsonFormatter` writes one JSON object per line for log collectors (UNMASK_LOG_FORMAT=json).
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from rq import get_current_job

NO_SCAN = "-"
_current_scan_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("unmask_scan_id", default=None)
# Job ids name their scan: "scan-<uuid>[-requeued]" (analysis), "webhook-<uuid>-<endpoint>" (delivery).
_JOB_ID_SCAN = re.compile(r"^(?:scan|webhook)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
# The attributes every LogRecord has; anything else on a record was passed as `extra=` and goes into JSON.
_STANDARD_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "scan_id"}

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def scan_log_context(scan_id: object) -> Iterator[None]:
    """Within the block, log lines of this thread carry `scan_id`."""
    token = _current_scan_id.set(str(scan_id))
    try:
        yield
    finally:
        _current_scan_id.reset(token)


def with_scan_log_context(job: Callable[P, R]) -> Callable[P, R]:
    """Decorate a job whose first argument is a scan id so that everything it logs carries that id."""

    @functools.wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        scan_id = args[0] if args else kwargs.get("scan_id")
        with scan_log_context(scan_id):
            return job(*args, **kwargs)

    return run


def current_scan_id() -> str:
    """The scan the current thread is working on, or NO_SCAN."""
    bound = _current_scan_id.get()
    if bound:
        return bound
    job = get_current_job()
    if job is not None:
        match = _JOB_ID_SCAN.match(job.id or "")
        if match:
            return match.group(1)
    return NO_SCAN


class ScanIdFilter(logging.Filter):
    """Adds `scan_id` to every record (never drops one), for formats that print `%(scan_id)s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "scan_id", None):
            record.scan_id = current_scan_id()
        return True


# RQ's own INFO lines for registry housekeeping. ScanWorker runs that housekeeping every 20 s, to find the scans
# of crashed workers quickly (scans/worker.py), so at INFO these lines would bury the job lines of an idle worker.
RQ_HOUSEKEEPING_MESSAGES = frozenset(
    {"Worker %s: cleaning registries for queue: %s", "Worker %s: cleaning group registries"}
)


class RqHousekeepingFilter(logging.Filter):
    """Drops RQ's routine "cleaning registries" lines unless the root logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "rq.worker" and record.msg in RQ_HOUSEKEEPING_MESSAGES:
            return logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, scan_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "scan_id": getattr(record, "scan_id", None) or current_scan_id(),
            "process": record.process,
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_RECORD_ATTRIBUTES and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
