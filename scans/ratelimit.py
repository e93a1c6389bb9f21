"""Upload rate limit and daily quota per user, counted in Redis so that they hold across web processes.

Two fixed-window counters per user: upload attempts per `UNMASK_UPLOAD_RATE_WINDOW` seconds (at most
`UNMASK_UPLOAD_RATE_LIMIT`), and accepted scans per UTC day (at most `UNMASK_UPLOAD_DAILY_QUOTA`). A limit
of 0 is off. If Redis cannot be reached the limits are not enforced (logged): the upload itself then fails
to enqueue and says so, which is the clearer message.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import redis
from django.conf import settings

from scans.queues import scan_queue

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

KEY_PREFIX = "unmask:uploads"


class UploadThrottled(Exception):
    """The user has uploaded too much; `retry_after` is how many seconds until the limit lifts."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, retry_after)


def upload_attempt_register(*, user: AbstractBaseUser) -> None:
    """Count one upload attempt and reserve one unit of the daily quota; raises `UploadThrottled` when over.

    Call `upload_quota_release` if the upload is then rejected, so only accepted scans use the quota.
    """
    rate_limit = settings.UNMASK_UPLOAD_RATE_LIMIT
    daily_quota = settings.UNMASK_UPLOAD_DAILY_QUOTA
    if rate_limit <= 0 and daily_quota <= 0:
        return
    try:
        connection = _redis()
        window = max(1, settings.UNMASK_UPLOAD_RATE_WINDOW)
        window_number, seconds_into_window = divmod(int(time.time()), window)
        # Both counters in one pipeline: one round trip to Redis per upload, not one per counter.
        counters = []
        with connection.pipeline(transaction=False) as pipeline:
            if rate_limit > 0:
                counters.append("rate")
                _queue_increment(pipeline, _rate_key(user, window_number), expire_seconds=window)
            if daily_quota > 0:
                counters.append("quota")
                _queue_increment(pipeline, _quota_key(user), expire_seconds=_seconds_until_utc_midnight() + 60)
            replies = pipeline.execute()
        counts = dict(zip(counters, (int(count) for count in replies[::2]), strict=True))
        if counts.get("rate", 0) > rate_limit > 0:
            if "quota" in counts:
                # The attempt is refused, so it must not use up a unit of the quota either.
                connection.decr(_quota_key(user))
            raise UploadThrottled(
                f"Too many uploads: at most {rate_limit} every {window} seconds. Please wait a moment.",
                retry_after=window - seconds_into_window,
            )
        if counts.get("quota", 0) > daily_quota > 0:
            connection.decr(_quota_key(user))
            raise UploadThrottled(
                f"Daily upload quota reached: at most {daily_quota} scans per day. It resets at midnight UTC.",
                retry_after=_seconds_until_utc_midnight(),
            )
    except redis.RedisError:
        logger.warning("Upload limits not enforced: Redis is unreachable", exc_info=True)


def upload_quota_release(*, user: AbstractBaseUser) -> None:
    """Give back the quota unit an attempt reserved, because the upload was rejected."""
    if settings.UNMASK_UPLOAD_DAILY_QUOTA <= 0:
        return
    try:
        connection = _redis()
        key = _quota_key(user)
        # Never below zero: the day may have rolled over (and the counter expired) since the reservation.
        if int(connection.get(key) or 0) > 0:
            connection.decr(key)
    except redis.RedisError:
        logger.warning("Could not release an upload quota unit: Redis is unreachable", exc_info=True)


def upload_quota_used(*, user: AbstractBaseUser) -> int:
    """How many scans the user has had accepted today (UTC)."""
    return int(_redis().get(_quota_key(user)) or 0)


def _redis() -> redis.Redis:
    # The queue's Redis: one service to run, and its database is the one the tests isolate.
    return scan_queue().connection


def _queue_increment(pipeline: redis.client.Pipeline, key: str, *, expire_seconds: int) -> None:
    """Queue INCR on `key` and its expiry, set only when the counter is new (the window must not slide)."""
    pipeline.incr(key)
    pipeline.expire(key, expire_seconds, nx=True)


def _rate_key(user: AbstractBaseUser, window_number: int) -> str:
    return f"{KEY_PREFIX}:rate:{user.pk}:{window_number}"


def _quota_key(user: AbstractBaseUser) -> str:
    return f"{KEY_PREFIX}:quota:{user.pk}:{datetime.now(UTC):%Y%m%d}"


def _seconds_until_utc_midnight() -> int:
    current = datetime.now(UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - current).total_seconds()) + 1
