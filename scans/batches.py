"""Batches: many files uploaded at once (API or dashboard); each accepted file becomes its own scan.

`batch_create` runs every file through `scans.intake.scan_intake` (the same checks, rate limit and quota as a
single upload) inside one transaction, so the analysis jobs are enqueued only once the batch and all its
scans are committed. Files refused at upload are recorded on the batch with their reason.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from scans.intake import BatchRejected, scan_intake
from scans.models import Batch, Scan
from scans.ratelimit import UploadThrottled
from scans.uploads import UploadRejected, display_filename

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.core.files.uploadedfile import UploadedFile


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands: its scans per status and verdict, and whether any is still running."""

    total: int
    rejected: int
    by_status: dict[str, int]
    by_verdict: dict[str, int]

    @property
    def is_finished(self) -> bool:
        return self.by_status.get(Scan.Status.QUEUED, 0) + self.by_status.get(Scan.Status.PROCESSING, 0) == 0

    @property
    def status(self) -> str:
        return "done" if self.is_finished else "processing"


@transaction.atomic
def batch_create(*, owner: AbstractBaseUser, uploaded_files: Sequence[UploadedFile]) -> Batch:
    """Make one scan per acceptable file under a new batch; record the others' reasons on the batch.

    Raises `BatchRejected` when there is no file or more than UNMASK_BATCH_MAX_FILES, when the user's
    upload rate limit or quota is hit, or no model is active (503), before any file was accepted.
    A limit hit part-way keeps the files accepted so far and records the rest as rejected.
    """
    if not uploaded_files:
        raise BatchRejected("Choose at least one file.")
    if len(uploaded_files) > settings.UNMASK_BATCH_MAX_FILES:
        raise BatchRejected(f"A batch holds at most {settings.UNMASK_BATCH_MAX_FILES} files.")
    batch = Batch.objects.create(owner=owner)
    rejected: list[dict[str, Any]] = []
    accepted_ids: list[uuid.UUID] = []
    for uploaded_file in uploaded_files:
        filename = display_filename(uploaded_file.name)
        try:
            scan = scan_intake(owner=owner, uploaded_file=uploaded_file)
        except UploadThrottled as exc:
            if not accepted_ids:
                raise BatchRejected(exc.message, status_code=429, retry_after=exc.retry_after) from None
            rejected.append({"filename": filename, "error": exc.message, "status_code": 429})
            continue
        except UploadRejected as exc:
            if exc.status_code == 503 and not accepted_ids:
                raise BatchRejected(exc.message, status_code=503) from None
            rejected.append({"filename": filename, "error": exc.message, "status_code": exc.status_code})
            continue
        accepted_ids.append(scan.pk)
    Scan.objects.filter(pk__in=accepted_ids).update(batch=batch)
    if rejected:
        batch.rejected = rejected
        batch.save(update_fields=["rejected"])
    return batch


def batch_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Batch]:
    """The user's own batches, newest first; nothing for an anonymous user."""
    if not user.is_authenticated:
        return Batch.objects.none()
    return Batch.objects.filter(owner=user).order_by("-created_at")


def batch_get_for_user(*, user: AbstractBaseUser | AnonymousUser, batch_id: Any) -> Batch:
    """One of the user's batches; `Batch.DoesNotExist` for anyone else's, a missing one or a malformed id."""
    try:
        batch_uuid = batch_id if isinstance(batch_id, uuid.UUID) else uuid.UUID(str(batch_id))
    except ValueError:
        raise Batch.DoesNotExist(f"no batch {batch_id!r}") from None
    return batch_list_for_user(user=user).get(pk=batch_uuid)


def batch_scans(*, batch: Batch) -> QuerySet[Scan]:
    """The batch's scans in upload order."""
    return batch.scans.select_related("image_model_version", "video_model_version").order_by("created_at")


def batch_progress(*, batch: Batch) -> BatchProgress:
    """Counts of the batch's scans by status and by verdict."""
    rows = list(batch.scans.values_list("status", "verdict"))
    return BatchProgress(
        total=len(rows),
        rejected=len(batch.rejected or []),
        by_status=dict(Counter(status for status, _verdict in rows)),
        by_verdict=dict(Counter(verdict for status, verdict in rows if status == Scan.Status.DONE)),
    )
