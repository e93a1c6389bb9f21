"""reconcile_scans: scans whose job is gone are re-enqueued once or failed; live and finished scans are left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rq.job import Job, JobStatus

from scans.models import Scan
from scans.queues import REQUEUED_JOB_SUFFIX, RETRY_JOB_SUFFIX, scan_queue
from scans.recovery import LOST_BEFORE_START_MESSAGE, WORKER_CRASHED_TWICE_MESSAGE, scans_reconcile
from scans.tests.uploads import make_scan_row

pytestmark = pytest.mark.django_db

OLD = timedelta(minutes=10)


def _statuses(*scans: Scan) -> list[str]:
    return [Scan.objects.get(pk=scan.pk).status for scan in scans]


def test_a_queued_scan_whose_job_vanished_is_requeued_once_then_failed(
    alice, redis_conn, django_capture_on_commit_callbacks
):
    scan = make_scan_row(alice, job_id=f"scan-lost-{alice.pk}", age=OLD)

    with django_capture_on_commit_callbacks(execute=True):
        first = scans_reconcile()

    scan.refresh_from_db()
    assert first.requeued == [str(scan.id)]
    assert scan.status == Scan.Status.QUEUED
    assert scan.job_id.endswith(REQUEUED_JOB_SUFFIX)
    requeued_job = Job.fetch(scan.job_id, connection=redis_conn)
    assert requeued_job.args == (str(scan.id),)
    assert requeued_job.get_status() == JobStatus.QUEUED

    # The re-enqueued job is live: nothing to do.
    assert scans_reconcile().requeued == scans_reconcile().failed == []

    requeued_job.delete()
    with django_capture_on_commit_callbacks(execute=True):
        second = scans_reconcile()

    scan.refresh_from_db()
    assert second.failed == [str(scan.id)]
    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == LOST_BEFORE_START_MESSAGE


def test_a_queued_scan_that_had_started_before_is_failed_not_requeued(alice, redis_conn):
    scan = make_scan_row(alice, job_id="scan-gone", attempts=1, age=OLD)

    report = scans_reconcile()

    assert report.failed == [str(scan.id)]
    assert _statuses(scan) == [Scan.Status.FAILED]


def test_a_queued_scan_with_a_live_job_is_left_alone(alice, redis_conn):
    scan = make_scan_row(alice, age=OLD)
    job = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id))
    Scan.objects.filter(pk=scan.pk).update(job_id=job.id)

    report = scans_reconcile()

    assert (report.checked, report.requeued, report.failed) == (1, [], [])
    assert _statuses(scan) == [Scan.Status.QUEUED]


def test_a_processing_scan_whose_job_is_gone_is_run_once_more_then_failed_after_a_second_crash(
    alice, redis_conn, django_capture_on_commit_callbacks
):
    scan = make_scan_row(
        alice, status=Scan.Status.PROCESSING, job_id="scan-gone", attempts=1, started_at=timezone.now(), age=OLD
    )

    with django_capture_on_commit_callbacks(execute=True):
        first = scans_reconcile()

    scan.refresh_from_db()
    assert (first.requeued, first.failed) == ([str(scan.id)], [])
    assert (scan.status, scan.attempts, scan.started_at) == (Scan.Status.QUEUED, 1, None)
    assert scan.job_id == f"scan-{scan.id}{RETRY_JOB_SUFFIX}1"
    retry_job = Job.fetch(scan.job_id, connection=redis_conn)
    assert (retry_job.args, retry_job.get_status()) == ((str(scan.id),), JobStatus.QUEUED)

    # The retry starts (a second attempt), then its worker dies too and the job disappears.
    Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.PROCESSING, attempts=2, started_at=timezone.now())
    retry_job.delete()
    with django_capture_on_commit_callbacks(execute=True):
        second = scans_reconcile()

    scan.refresh_from_db()
    assert (second.requeued, second.failed) == ([], [str(scan.id)])
    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == WORKER_CRASHED_TWICE_MESSAGE


def test_a_processing_scan_past_its_timeout_is_failed_even_if_its_job_looks_live(alice, redis_conn, settings):
    settings.UNMASK_IMAGE_JOB_TIMEOUT = 30
    scan = make_scan_row(
        alice,
        status=Scan.Status.PROCESSING,
        attempts=1,
        started_at=timezone.now() - timedelta(seconds=30 + 60 + 5),
        age=OLD,
    )
    job = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id))
    Scan.objects.filter(pk=scan.pk).update(job_id=job.id)

    report = scans_reconcile(grace_seconds=60)

    scan.refresh_from_db()
    assert report.failed == [str(scan.id)]
    assert "did not finish within 30 seconds" in scan.error_message


def test_a_processing_scan_within_its_timeout_with_a_live_job_is_left_alone(alice, redis_conn):
    scan = make_scan_row(alice, status=Scan.Status.PROCESSING, attempts=1, started_at=timezone.now(), age=OLD)
    job = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id))
    Scan.objects.filter(pk=scan.pk).update(job_id=job.id)

    assert scans_reconcile().failed == []
    assert _statuses(scan) == [Scan.Status.PROCESSING]


def test_scans_younger_than_the_grace_are_left_alone(alice, redis_conn):
    scan = make_scan_row(alice, job_id="scan-not-enqueued-yet")

    report = scans_reconcile(grace_seconds=60)

    assert report.checked == 0
    assert _statuses(scan) == [Scan.Status.QUEUED]


def test_done_and_failed_scans_are_never_touched(alice, redis_conn):
    done = make_scan_row(alice, status=Scan.Status.DONE, verdict="real", fake_probability=0.2, age=OLD)
    failed = make_scan_row(alice, status=Scan.Status.FAILED, error_message="original reason", age=OLD)

    report = scans_reconcile()

    assert report.checked == 0
    assert _statuses(done, failed) == [Scan.Status.DONE, Scan.Status.FAILED]
    assert Scan.objects.get(pk=failed.pk).error_message == "original reason"


def test_the_command_runs_one_pass_and_reports_it(alice, redis_conn, capsys):
    scan = make_scan_row(alice, job_id="scan-gone", attempts=1, age=OLD)

    call_command("reconcile_scans")

    output = capsys.readouterr().out
    assert "checked 1 unfinished scan(s): 0 re-enqueued, 1 marked failed" in output
    assert f"failed {scan.id}" in output


@pytest.mark.parametrize("arguments", [["--loop", "0"], ["--grace", "-1"]])
def test_the_command_refuses_nonsense_intervals(arguments):
    with pytest.raises(CommandError):
        call_command("reconcile_scans", *arguments)
