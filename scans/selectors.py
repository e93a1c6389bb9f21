"""Reads on scans: a user's own scans, one of them, and the platform's health."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q, QuerySet
from rq.queue import Queue

from ml.result import Analysis, VideoScoring
from newsroom.selectors import team_role_for_user
from scans.heartbeats import live_worker_count
from scans.models import Scan
from scans.queues import SCAN_QUEUE, redis_eviction_policy, redis_eviction_warning, scan_queue_names
from training.models import ModelVersion
from training.selectors import model_version_active

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

logger = logging.getLogger(__name__)

SCAN_FILTERS = ("status", "verdict", "kind", "q", "date_from", "date_to", "case")
_HEALTH_TIMEOUT_SECONDS = 2


def _visible_scans(user: AbstractBaseUser) -> QuerySet[Scan]:
    """The user's own scans and those filed in a case of a team they are a member of (any role)."""
    team_scans = Scan.objects.filter(case__team__memberships__user=user).values("pk")
    return Scan.objects.filter(Q(owner=user) | Q(pk__in=team_scans))


def scan_list_for_user(*, user: AbstractBaseUser | AnonymousUser, filters: dict | None = None) -> QuerySet[Scan]:
    """The user's own scans, newest first, narrowed by `filters`; with the `case` filter, that case's scans.

    Filters: `status`, `verdict`, `kind` (exact values), `q` (a case-insensitive search in the
    original file name), `date_from` / `date_to` (dates, inclusive, of the upload in the site's time
    zone) and `case` (a case id: every scan filed in it, whoever uploaded it, for a member of its team; nothing
    for anyone else). Empty values are ignored; an anonymous user owns nothing.
    """
    if not user.is_authenticated:
        return Scan.objects.none()
    filters = {name: value for name, value in (filters or {}).items() if name in SCAN_FILTERS and value}
    if "case" in filters:
        case_id = getattr(filters["case"], "pk", filters["case"])
        scans = Scan.objects.filter(case_id=case_id, case__team__memberships__user=user)
    else:
        scans = Scan.objects.filter(owner=user)
    scans = scans.select_related("image_model_version", "video_model_version", "owner")
    for name in ("status", "verdict", "kind"):
        if name in filters:
            scans = scans.filter(**{name: filters[name]})
    if "q" in filters:
        scans = scans.filter(original_filename__icontains=str(filters["q"]).strip())
    if "date_from" in filters:
        scans = scans.filter(created_at__date__gte=filters["date_from"])
    if "date_to" in filters:
        scans = scans.filter(created_at__date__lte=filters["date_to"])
    return scans.order_by("-created_at")


def scan_get_for_user(*, user: AbstractBaseUser | AnonymousUser, scan_id: uuid.UUID | str) -> Scan:
    """One scan the user may see: their own, or one filed in a case of a team they are in.

    Raises `Scan.DoesNotExist` for a malformed id, a missing scan or another user's scan alike, so
    callers answer 404 and never reveal that someone else's scan exists. What the user may do with it beyond
    reading is `scan_team_role`'s answer.
    """
    try:
        scan_uuid = scan_id if isinstance(scan_id, uuid.UUID) else uuid.UUID(str(scan_id))
    except ValueError:
        raise Scan.DoesNotExist(f"no scan {scan_id!r}") from None
    if not user.is_authenticated:
        raise Scan.DoesNotExist(f"no scan {scan_id!r}")
    return (
        _visible_scans(user)
        .select_related("image_model_version", "video_model_version", "owner", "case__team")
        .get(pk=scan_uuid)
    )


def scan_team_role(*, scan: Scan, user: AbstractBaseUser | AnonymousUser) -> str | None:
    """The user's role (owner, analyst, viewer) in the team whose case the scan is filed in; None outside one."""
    if scan.case_id is None or not user.is_authenticated:
        return None
    return team_role_for_user(user=user, team_id=scan.case.team_id)


def scan_video_scoring(*, scan: Scan, analysis: Analysis) -> VideoScoring | None:
    """How the scan's people were scored: as its stored analysis recorded it, or, for a result stored before
    analyses recorded it, as the video version the scan used describes it. None for photos."""
    if not analysis.is_video:
        return None
    if analysis.scoring is not None:
        return analysis.scoring
    if scan.video_model_version is None:
        return None
    image_settings = scan.image_model_version.settings if scan.image_model_version else {}
    return VideoScoring.from_settings(
        scan.video_model_version.settings or {}, frame_threshold=float((image_settings or {}).get("threshold", 0.5))
    )


def platform_health() -> dict[str, Any]:
    """Whether the database and Redis answer, how many workers listen, how deep the queue is, which models are active.

    `status` is "ok", "degraded" (up, but nothing would analyse a scan: no worker or no active image
    model) or "unavailable" (the database or Redis is down).
    """
    database = _database_health()
    models = _active_models() if database["ok"] else {}
    queue_config = settings.RQ_QUEUES[SCAN_QUEUE]
    redis_state: dict[str, Any] = {"ok": False}
    workers = None
    queue_depth = None
    try:
        redis_connection = redis.Redis.from_url(
            queue_config["URL"],
            socket_connect_timeout=_HEALTH_TIMEOUT_SECONDS,
            socket_timeout=_HEALTH_TIMEOUT_SECONDS,
        )
        redis_connection.ping()
        # Images and videos may be routed to different queues (UNMASK_IMAGE_QUEUE / UNMASK_VIDEO_QUEUE).
        workers = live_worker_count(redis_connection, *scan_queue_names())
        queue_depth = sum(
            redis_connection.llen(Queue.redis_queue_namespace_prefix + name) for name in scan_queue_names()
        )
        redis_state = {"ok": True}
        # Reported only when it is wrong: a Redis that may evict keys can silently drop queued jobs.
        eviction_warning = redis_eviction_warning(redis_connection)
        if eviction_warning:
            redis_state.update(eviction_policy=redis_eviction_policy(redis_connection), warning=eviction_warning)
    except redis.RedisError as exc:
        logger.warning("Health check: Redis unreachable: %s", exc)
        redis_state = {"ok": False, "error": "Redis is unreachable"}
    if not (database["ok"] and redis_state["ok"]):
        status = "unavailable"
    elif not workers or not models.get(ModelVersion.Kind.IMAGE):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "database": database,
        "redis": redis_state,
        "workers": workers,
        "queue_depth": queue_depth,
        "models": models,
    }


def _database_health() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("Health check: database unreachable: %s", exc)
        return {"ok": False, "error": "the database is unreachable"}
    return {"ok": True}


def _active_models() -> dict[str, dict[str, Any] | None]:
    active = {}
    for kind in ModelVersion.Kind.values:
        version = model_version_active(kind=kind)
        active[kind] = (
            None
            if version is None
            else {"id": version.pk, "name": version.name, "version": version.version, "label": version.label}
        )
    return active
