"""Writes on scans: create one from an accepted upload, enqueue its analysis, move it through its states, delete it.

Every status change is a conditional UPDATE (`... WHERE status IN (...)`), so a finished scan never
changes again and a duplicate or late job is a no-op: the functions return whether they won. The upload's
checks live in `scans.uploads`, the user's limits in `scans.intake`, the queue in `scans.queues`, the
analysis itself in `scans.analysis`, and the recovery of lost or crashed jobs in `scans.recovery`.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import redis
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ml.result import Analysis
from newsroom.audit import audit_record
from newsroom.models import AuditEvent
from newsroom.services import ActionRefused
from scans.evidence import evidence_copy, evidence_delete, evidence_names
from scans.models import Scan
from scans.queues import analysis_enqueue, fetch_enqueue, job_id_for
from scans.signals import scan_finished
from scans.uploads import FALLBACK_FILENAME, UploadRejected, display_filename, inspect_upload, local_upload
from training.models import ModelVersion
from training.selectors import model_version_active

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.core.files import File
    from django.core.files.uploadedfile import UploadedFile

    from newsroom.models import Case

logger = logging.getLogger(__name__)

QUEUE_UNAVAILABLE_MESSAGE = "The analysis queue is unavailable. Please upload the file again later."


# --- Create ------------------------------------------------------------------------------------------


def scan_create(*, owner: AbstractBaseUser, uploaded_file: UploadedFile, case: Case | None = None) -> Scan:
    """Turn an upload into a queued scan and enqueue its analysis once the row is committed.

    The kind and format are decided from the content (`scans.uploads.inspect_upload`), never from the
    client's file name or Content-Type. The file is stored under a random name; the client's name is kept
    only as cleaned display text. The scan records the model versions that are active now, so its result
    stays attributable after a later activation. When the owner already has a finished scan of the same
    bytes by those same versions, its result (and evidence) is copied into the new scan, marked
    `reused_from`, and no job runs. With `case` (one the owner may file into: `newsroom.services.case_for_filing`)
    the scan is filed there. Raises `UploadRejected`.
    """
    with local_upload(uploaded_file) as (local_path, digest, content):
        media_type = inspect_upload(local_path, digest)
        image_version, video_version = _versions_for(media_type.kind)

        content.seek(0)
        scan = Scan(
            owner=owner,
            kind=media_type.kind,
            original_filename=display_filename(uploaded_file.name),
            size_bytes=digest.size_bytes,
            sha256=digest.sha256,
            content_type=media_type.content_type,
            image_model_version=image_version,
            video_model_version=video_version,
            case=case,
        )
        earlier = _reusable_scan(scan)
        if earlier is None:
            scan.job_id = job_id_for(scan.id)
        else:
            _copy_result(earlier, into=scan)
        # A file the upload handler streamed to disk is moved into storage (a rename), not copied.
        scan.file.save(f"{FALLBACK_FILENAME}{media_type.suffix}", content, save=False)
    try:
        with transaction.atomic():
            scan.save(force_insert=True)
            audit_record(
                action=AuditEvent.Action.UPLOADED,
                actor=owner,
                team_id=case.team_id if case else None,
                scan_id=scan.id,
                scan_name=scan.original_filename,
                detail={"case": str(case.pk), "case_title": case.title} if case else {},
            )
            if earlier is None:
                transaction.on_commit(lambda: scan_enqueue(scan_id=scan.id, job_id=scan.job_id, kind=scan.kind))
            else:
                names = sorted(evidence_names(Analysis.from_json(scan.result, kind=scan.kind)))
                transaction.on_commit(lambda: evidence_copy(from_scan_id=earlier.id, to_scan_id=scan.id, names=names))
                _announce_finished(scan.id)
    except BaseException:
        scan.file.storage.delete(scan.file.name)
        raise
    return scan


FETCH_JOB = "scans.jobs.fetch_scan"


def scan_create_from_url(*, owner: AbstractBaseUser, source_url: str, case: Case | None = None) -> Scan:
    """A scan of the media at `source_url`, which a worker downloads first (`fetch_scan`): the row starts as
    `fetching`, with the link recorded and the last part of its path as the name shown until the download names
    the media. The link is checked before (`scans.url_fetch.source_url_check`) by the caller."""
    name = display_filename(source_url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "linked-media")
    with transaction.atomic():
        scan = Scan.objects.create(
            owner=owner,
            kind="",
            original_filename=name,
            size_bytes=0,
            sha256="",
            status=Scan.Status.FETCHING,
            source_url=source_url,
            case=case,
            progress={"stage": "downloading"},
        )
        audit_record(
            action=AuditEvent.Action.UPLOADED,
            actor=owner,
            team_id=case.team_id if case else None,
            scan_id=scan.id,
            scan_name=scan.original_filename,
            detail={"source_url": source_url, **({"case": str(case.pk), "case_title": case.title} if case else {})},
        )
        transaction.on_commit(lambda: _fetch_enqueue(scan.id))
    return scan


def _fetch_enqueue(scan_id: uuid.UUID) -> None:
    try:
        fetch_enqueue(scan_id=scan_id, job=FETCH_JOB)
    except redis.RedisError:
        logger.exception("Could not enqueue the download of scan %s", scan_id)
        scan_mark_failed(scan_id=scan_id, error_message=QUEUE_UNAVAILABLE_MESSAGE)


def scan_fill_fetched(*, scan_id: uuid.UUID | str, fetched_file: File, filename: str, media_url: str) -> bool:
    """fetching -> queued (or done, reusing an earlier result, as `scan_create`): the downloaded media judged like
    an upload (`UploadRejected` for one that is not accepted), stored, and its analysis enqueued on commit.
    False when the scan is gone or no longer fetching (deleted meanwhile: the stored file is removed again)."""
    scan = Scan.objects.filter(pk=scan_id, status=Scan.Status.FETCHING).first()
    if scan is None:
        return False
    with local_upload(fetched_file) as (local_path, digest, content):
        media_type = inspect_upload(local_path, digest)
        image_version, video_version = _versions_for(media_type.kind)
        scan.kind = media_type.kind
        scan.original_filename = display_filename(filename)
        scan.size_bytes = digest.size_bytes
        scan.sha256 = digest.sha256
        scan.content_type = media_type.content_type
        scan.image_model_version = image_version
        scan.video_model_version = video_version
        # A video site's signed file URL can outgrow the column; it expires anyway, and the link the person gave
        # (`source_url`) is the record that lasts, so an over-long one is left out rather than failing the scan.
        scan.media_url = media_url if len(media_url) <= Scan._meta.get_field("media_url").max_length else ""
        earlier = _reusable_scan(scan)
        if earlier is None:
            scan.status = Scan.Status.QUEUED
            scan.job_id = job_id_for(scan.id)
            scan.progress = {}
        else:
            _copy_result(earlier, into=scan)
        content.seek(0)
        scan.file.save(f"{FALLBACK_FILENAME}{media_type.suffix}", content, save=False)
    fields = {
        name: getattr(scan, name)
        for name in (
            "kind",
            "original_filename",
            "size_bytes",
            "sha256",
            "content_type",
            "image_model_version",
            "video_model_version",
            "media_url",
            "status",
            "job_id",
            "progress",
            "file",
            "verdict",
            "fake_probability",
            "faces",
            "timings",
            "result",
            "reused_from",
            "started_at",
            "finished_at",
        )
    }
    try:
        with transaction.atomic():
            if Scan.objects.filter(pk=scan.pk, status=Scan.Status.FETCHING).update(**fields) != 1:
                transaction.on_commit(lambda: scan.file.storage.delete(scan.file.name))
                return False
            if earlier is None:
                transaction.on_commit(lambda: scan_enqueue(scan_id=scan.id, job_id=scan.job_id, kind=scan.kind))
            else:
                names = sorted(evidence_names(Analysis.from_json(scan.result, kind=scan.kind)))
                transaction.on_commit(lambda: evidence_copy(from_scan_id=earlier.id, to_scan_id=scan.id, names=names))
                _announce_finished(scan.id)
    except BaseException:
        scan.file.storage.delete(scan.file.name)
        raise
    return True


def _reusable_scan(scan: Scan) -> Scan | None:
    """The owner's latest finished scan of the same bytes by the same model versions, whose result still holds.

    Only a `done` scan qualifies (a failure may have been transient), and only with exactly the versions
    the new scan would use, so a newly activated model always gets its own look at the file.
    """
    return (
        Scan.objects.filter(
            owner=scan.owner,
            sha256=scan.sha256,
            kind=scan.kind,
            status=Scan.Status.DONE,
            image_model_version=scan.image_model_version,
            video_model_version=scan.video_model_version,
        )
        .order_by("-finished_at")
        .first()
    )


def _copy_result(earlier: Scan, *, into: Scan) -> None:
    """Make `into` a finished scan carrying `earlier`'s result, marked as reused (no job runs for it)."""
    now = timezone.now()
    into.status = Scan.Status.DONE
    into.verdict = earlier.verdict
    into.fake_probability = earlier.fake_probability
    into.faces = earlier.faces
    into.timings = earlier.timings
    into.result = {**earlier.result, "reused_from": str(earlier.id)}
    into.progress = {"stage": "done"}
    into.reused_from = earlier
    into.started_at = now
    into.finished_at = now


def _versions_for(kind: str) -> tuple[ModelVersion, ModelVersion | None]:
    """The active versions a new scan of `kind` will use.

    Every scan needs the image model (videos score their face crops with it too). A video also records the
    active video model; without one, the analysis aggregates the frame scores and its result says so.
    """
    image_version = model_version_active(kind=ModelVersion.Kind.IMAGE)
    if image_version is None:
        raise UploadRejected(
            "No active image model is registered yet, so nothing can be analysed. "
            "An administrator must register one (`python manage.py register_shipped_models`).",
            status_code=503,
        )
    video_version = model_version_active(kind=ModelVersion.Kind.VIDEO) if kind == Scan.Kind.VIDEO else None
    return image_version, video_version


def scan_enqueue(*, scan_id: uuid.UUID | str, job_id: str, kind: str) -> None:
    """Put the scan's analysis job on its queue; if Redis refuses, fail the scan at once rather than leave it
    hanging. Called once the scan's row (or its new job id) is committed."""
    try:
        analysis_enqueue(scan_id=scan_id, job_id=job_id, kind=kind)
    except redis.RedisError:
        logger.exception("Could not enqueue the analysis of scan %s", scan_id)
        scan_mark_failed(scan_id=scan_id, error_message=QUEUE_UNAVAILABLE_MESSAGE)


# --- Filing ------------------------------------------------------------------------------------------


SCAN_MOVE_OWNER_ONLY = "Only the person who uploaded a scan can move it."
SCAN_DELETE_OWNER_ONLY = "Only the person who uploaded a scan can delete it."


@transaction.atomic
def scan_move_to_case(*, scan: Scan, actor: AbstractBaseUser, case: Case | None) -> Scan:
    """File the scan into `case`, or with None take it back into its owner's own space.

    Only the scan's owner moves it (`ActionRefused`, 403, for anyone else who can see it); `case` must be one the
    owner may file into, as `newsroom.services.case_for_filing` gives it.
    """
    if scan.owner_id != actor.pk:
        raise ActionRefused(SCAN_MOVE_OWNER_ONLY, status_code=403)
    previous = scan.case
    Scan.objects.filter(pk=scan.pk).update(case=case)
    scan.case = case
    detail = {
        "from_case": str(previous.pk) if previous else None,
        "from_case_title": previous.title if previous else None,
        "to_case": str(case.pk) if case else None,
        "to_case_title": case.title if case else None,
    }
    # Each team involved keeps the move on record: the one it left and the one it joined.
    for team_id in dict.fromkeys(filed.team_id for filed in (previous, case) if filed is not None):
        audit_record(
            action=AuditEvent.Action.MOVED,
            actor=actor,
            team_id=team_id,
            scan_id=scan.pk,
            scan_name=scan.original_filename,
            detail=detail,
        )
    return scan


# --- Delete ------------------------------------------------------------------------------------------


@transaction.atomic
def scan_delete(*, scan: Scan, actor: AbstractBaseUser | None = None) -> None:
    """Delete the scan's row, then its stored file and evidence folder once the deletion is committed.

    A job still queued for it finds no row and does nothing; one already running cannot write a result
    back, because every transition is an UPDATE of a row that no longer exists. The deletion is in the audit log
    (under the team whose case held the scan), with `actor` as who did it.
    """
    storage = scan.file.storage
    file_name = scan.file.name
    scan_id = scan.pk
    filed = Scan.objects.filter(pk=scan.pk).values("original_filename", "case__team_id", "case__title").first()
    if filed is not None:
        audit_record(
            action=AuditEvent.Action.DELETED,
            actor=actor,
            team_id=filed["case__team_id"],
            scan_id=scan_id,
            scan_name=filed["original_filename"],
            detail={"case_title": filed["case__title"]} if filed["case__title"] else {},
        )
    Scan.objects.filter(pk=scan.pk).delete()
    if file_name:
        transaction.on_commit(lambda: storage.delete(file_name))
    transaction.on_commit(lambda: evidence_delete(scan_id=scan_id))


@transaction.atomic
def scans_delete_many(*, owner: AbstractBaseUser, scan_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Delete those of `scan_ids` that `owner` owns (others are ignored, never revealed); returns their ids.

    Files and evidence folders go once the deletion is committed, as for `scan_delete`.
    """
    scans = list(Scan.objects.filter(owner=owner, pk__in=scan_ids).only("id", "file"))
    for scan in scans:
        scan_delete(scan=scan, actor=owner)
    return {scan.id for scan in scans}


# --- Transitions -------------------------------------------------------------------------------------


@transaction.atomic
def scan_mark_processing(*, scan_id: uuid.UUID | str) -> bool:
    """queued -> processing, counting the attempt. False when the scan is gone or already past queued."""
    updated = Scan.objects.filter(pk=scan_id, status=Scan.Status.QUEUED).update(
        status=Scan.Status.PROCESSING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        progress={"stage": "starting"},
    )
    return updated == 1


@transaction.atomic
def scan_update_progress(*, scan_id: uuid.UUID | str, progress: dict) -> bool:
    """Record how far a running analysis is; ignored once the scan is no longer processing."""
    return Scan.objects.filter(pk=scan_id, status=Scan.Status.PROCESSING).update(progress=progress) == 1


@transaction.atomic
def scan_mark_done(*, scan_id: uuid.UUID | str, result: dict) -> bool:
    """processing -> done, storing the analysis result (`Analysis.to_json`) and the fields copied from it for
    listing.

    Raises ValueError for a result that breaks the ml contract (unknown verdict, probability outside
    [0, 1], or a probability without a face), so a broken result is never shown as a verdict.
    """
    verdict = result.get("verdict")
    fake_probability = result.get("fake_probability")
    if verdict not in Scan.Verdict.values:
        raise ValueError(f"analysis returned an unknown verdict {verdict!r}")
    if verdict == Scan.Verdict.NO_FACE:
        if fake_probability is not None:
            raise ValueError("analysis found no face but returned a probability")
    elif fake_probability is None or not 0.0 <= float(fake_probability) <= 1.0:
        raise ValueError(f"analysis returned an invalid fake probability {fake_probability!r}")
    updated = Scan.objects.filter(pk=scan_id, status=Scan.Status.PROCESSING).update(
        status=Scan.Status.DONE,
        verdict=verdict,
        fake_probability=None if fake_probability is None else float(fake_probability),
        faces=result.get("faces") or [],
        timings=result.get("timings") or {},
        result=result,
        progress={"stage": "done"},
        error_message="",
        finished_at=timezone.now(),
    )
    if updated == 1:
        _announce_finished(scan_id)
    return updated == 1


@transaction.atomic
def scan_mark_failed(*, scan_id: uuid.UUID | str, error_message: str, job_id: str | None = None) -> bool:
    """fetching, queued or processing -> failed with a user-facing reason; a finished scan is left as it is.

    With `job_id`, only while that is still the scan's job: a late report about a job the scan has moved
    on from (RQ failing the job of a crashed worker after the scan was re-queued) changes nothing.
    """
    unfinished = Scan.objects.filter(
        pk=scan_id, status__in=[Scan.Status.FETCHING, Scan.Status.QUEUED, Scan.Status.PROCESSING]
    )
    if job_id is not None:
        unfinished = unfinished.filter(job_id=job_id)
    updated = unfinished.update(
        status=Scan.Status.FAILED,
        error_message=error_message,
        progress={"stage": "failed"},
        finished_at=timezone.now(),
    )
    if updated == 1:
        _announce_finished(scan_id)
    return updated == 1


def _announce_finished(scan_id: uuid.UUID | str) -> None:
    """Send `scan_finished` once the change commits; a listener's failure is logged and never undoes it."""
    transaction.on_commit(lambda: scan_finished.send(sender=Scan, scan_id=scan_id), robust=True)
