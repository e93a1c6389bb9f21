"""Structured logs: worker log lines carry the scan id; the JSON format is one parsable object per line."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from scans.log_context import (
    NO_SCAN,
    JsonFormatter,
    RqHousekeepingFilter,
    ScanIdFilter,
    scan_log_context,
    with_scan_log_context,
)
from scans.queues import ANALYZE_JOB, scan_queue
from scans.tests.uploads import make_scan_row


class _RecordingHandler(logging.StreamHandler):
    """Writes formatted lines to a buffer and keeps the records, after the filters have run."""

    def __init__(self) -> None:
        self.stream_text = io.StringIO()
        super().__init__(self.stream_text)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        super().emit(record)


@pytest.fixture
def captured() -> Iterator[_RecordingHandler]:
    """A handler configured like settings.LOGGING's console handler, on the root logger."""
    handler = _RecordingHandler()
    handler.addFilter(ScanIdFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s scan=%(scan_id)s %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous_level)


def test_lines_inside_a_scan_context_carry_its_id_and_others_a_dash(captured):
    logger = logging.getLogger("unmask.test")

    @with_scan_log_context
    def job(scan_id: str) -> None:
        logger.info("inside the job")

    job("11111111-2222-3333-4444-555555555555")
    logger.info("outside")

    lines = captured.stream_text.getvalue().splitlines()
    assert lines == [
        "INFO unmask.test scan=11111111-2222-3333-4444-555555555555 inside the job",
        f"INFO unmask.test scan={NO_SCAN} outside",
    ]


def log_inside_a_job(message: str) -> None:
    """An RQ job that is not decorated: its scan id comes from the RQ job id."""
    logging.getLogger("unmask.test").warning(message)


@pytest.mark.django_db
def test_every_worker_line_of_an_analysis_carries_the_scan_id(alice, run_worker, captured):
    scan = make_scan_row(alice)  # no model version recorded: the job logs an error and fails the scan
    scan_queue().enqueue(ANALYZE_JOB, str(scan.pk), job_id=f"scan-{scan.pk}")
    other_scan_id = uuid.uuid4()
    scan_queue().enqueue(f"{__name__}.log_inside_a_job", "from an undecorated job", job_id=f"scan-{other_scan_id}")

    run_worker()

    job_records = [record for record in captured.records if record.name in {"scans.jobs", "unmask.test"}]
    assert [(record.name, record.scan_id) for record in job_records] == [
        ("scans.jobs", str(scan.pk)),
        ("unmask.test", str(other_scan_id)),
    ]
    assert f"scan={scan.pk} Scan {scan.pk} has no model" in captured.stream_text.getvalue()


def test_the_json_format_is_one_object_per_line_with_the_scan_id():
    record = logging.LogRecord("scans.jobs", logging.WARNING, __file__, 1, "slow %s", ("decode",), None)
    record.frames = 32
    with scan_log_context("abc"):
        ScanIdFilter().filter(record)

    entry = json.loads(JsonFormatter().format(record))

    assert entry["scan_id"] == "abc"
    assert entry["message"] == "slow decode"
    assert entry["level"] == "WARNING" and entry["logger"] == "scans.jobs"
    assert entry["frames"] == 32


def _rq_record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("rq.worker", logging.INFO, __file__, 1, message, args, None)


def test_rqs_routine_registry_cleaning_lines_are_dropped_and_job_lines_kept(monkeypatch):
    housekeeping = RqHousekeepingFilter()
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)

    assert not housekeeping.filter(_rq_record("Worker %s: cleaning registries for queue: %s", "w1", "scans"))
    assert not housekeeping.filter(_rq_record("Worker %s: cleaning group registries", "w1"))
    assert housekeeping.filter(_rq_record("%s: %s (%s)", "scans", "scans.jobs.analyze_scan('x')", "scan-x"))

    monkeypatch.setattr(logging.getLogger(), "level", logging.DEBUG)
    assert housekeeping.filter(_rq_record("Worker %s: cleaning group registries", "w1"))
