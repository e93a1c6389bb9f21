"""Brute-force protection for password log-ins, counted in Redis so that it holds across web processes.

Two limits, each over a window of UNMASK_LOGIN_LOCKOUT_SECONDS:

- per (username, client address): after UNMASK_LOGIN_FAILURE_LIMIT failed attempts that pair is locked out
  for UNMASK_LOGIN_LOCKOUT_SECONDS. Keyed on the pair, so an attacker elsewhere cannot lock the real user out,
  and one client retrying one account does not lock out the others behind the same address (a NAT, an office);
- per client address, the wider one: once failed attempts from it have named UNMASK_LOGIN_IP_USERNAME_LIMIT
  different usernames (password spraying), the whole address is locked out for as long.

While locked out no password is checked at all, so the answer says nothing about the password. A success clears
the pair's count. Every lockout is logged. Where Redis cannot be reached the limits are not enforced (logged), as
with the upload limits: log-in keeps working.

`ThrottledModelBackend` (accounts.backends) applies this to every `authenticate()` call with a request: the
log-in page, `POST /api/v1/auth/token/` and the admin's log-in; the first two then answer 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

KEY_PREFIX = "unmask:login"
# Where the backend leaves a lockout for the view that called authenticate() to answer 429 with.
_LOCKOUT_ATTRIBUTE = "unmask_login_lockout"


class LoginLockedOut(Exception):
    """Log-in refused for `retry_after` seconds; `message` is shown to the user as is."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, retry_after)


def client_ip(request: HttpRequest | Any) -> str:
    """The client's address: REMOTE_ADDR, or behind UNMASK_PROXY_COUNT reverse proxies (each appending the address
    it saw to X-Forwarded-For) the entry the outermost trusted proxy wrote; entries before it are the client's own
    claims and are never trusted."""
    proxies = settings.UNMASK_PROXY_COUNT
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def login_lockout_check(*, username: str, client_ip: str) -> None:
    """Raise `LoginLockedOut` while the (username, address) pair or the whole address is locked out."""
    try:
        with _redis().pipeline(transaction=False) as pipeline:
            pipeline.ttl(_pair_lock_key(username, client_ip))
            pipeline.ttl(_address_lock_key(client_ip))
            pair_seconds, address_seconds = pipeline.execute()
    except redis.RedisError:
        logger.warning("Log-in limits not enforced: Redis is unreachable", exc_info=True)
        return
    if address_seconds > 0:
        raise _address_locked_out(address_seconds)
    if pair_seconds > 0:
        raise _pair_locked_out(pair_seconds)


def login_failure_register(*, username: str, client_ip: str) -> LoginLockedOut | None:
    """Count a failed log-in; returns the lockout it triggered (logged), or None.

    The pair's counter and the address's set of usernames both start their window at their first failure.
    Reaching a limit sets a lock key that expires on its own, and starts the pair's count again from zero.
    """
    window = _window_seconds()
    pair_failures_key = f"{KEY_PREFIX}:failures:{_pair_digest(username, client_ip)}"
    usernames_key = f"{KEY_PREFIX}:usernames:{_address_digest(client_ip)}"
    try:
        connection = _redis()
        with connection.pipeline(transaction=False) as pipeline:
            pipeline.incr(pair_failures_key)
            pipeline.expire(pair_failures_key, window, nx=True)
            pipeline.sadd(usernames_key, _username_digest(username))
            pipeline.expire(usernames_key, window, nx=True)
            pipeline.scard(usernames_key)
            failures, _expiry, _added, _expiry_set, usernames = pipeline.execute()
        if usernames >= settings.UNMASK_LOGIN_IP_USERNAME_LIMIT > 0:
            if connection.set(_address_lock_key(client_ip), 1, ex=window, nx=True):
                logger.warning(
                    "Log-in locked out for %d s for every username from %s: failed attempts named %d usernames",
                    window,
                    client_ip,
                    usernames,
                )
            return _address_locked_out(window)
        if failures >= settings.UNMASK_LOGIN_FAILURE_LIMIT > 0:
            with connection.pipeline() as pipeline:
                pipeline.set(_pair_lock_key(username, client_ip), 1, ex=window)
                pipeline.delete(pair_failures_key)
                pipeline.execute()
            logger.warning(
                "Log-in locked out for %d s for username %r from %s after %d failed attempts",
                window,
                username,
                client_ip,
                failures,
            )
            return _pair_locked_out(window)
    except redis.RedisError:
        logger.warning("Could not count a failed log-in: Redis is unreachable", exc_info=True)
    return None


def login_success_register(*, username: str, client_ip: str) -> None:
    """A correct password: the pair's failures so far no longer count."""
    try:
        _redis().delete(f"{KEY_PREFIX}:failures:{_pair_digest(username, client_ip)}")
    except redis.RedisError:
        logger.warning("Could not reset the failed log-ins of %r: Redis is unreachable", username, exc_info=True)


def login_lockout_remember(request: HttpRequest | Any, lockout: LoginLockedOut) -> None:
    """Leave the lockout on the request, for the view that called `authenticate()` to answer with."""
    setattr(request, _LOCKOUT_ATTRIBUTE, lockout)


def login_lockout_of(request: HttpRequest | Any) -> LoginLockedOut | None:
    """The lockout `authenticate()` met on this request, if any."""
    return getattr(request, _LOCKOUT_ATTRIBUTE, None)


def _pair_locked_out(seconds: int) -> LoginLockedOut:
    return LoginLockedOut(
        f"Too many failed log-in attempts for this account from your address. Try again in {_minutes(seconds)}.",
        retry_after=seconds,
    )


def _address_locked_out(seconds: int) -> LoginLockedOut:
    return LoginLockedOut(
        f"Too many failed log-in attempts from your address, for several accounts. Try again in {_minutes(seconds)}.",
        retry_after=seconds,
    )


def _minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _window_seconds() -> int:
    return max(1, settings.UNMASK_LOGIN_LOCKOUT_SECONDS)


def _username_digest(username: str) -> str:
    # Usernames are matched case-insensitively, as people type them; hashed, so keys are short and opaque.
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]


def _address_digest(client_ip: str) -> str:
    return hashlib.sha256(client_ip.encode()).hexdigest()[:32]


def _pair_digest(username: str, client_ip: str) -> str:
    return hashlib.sha256(f"{_username_digest(username)}|{client_ip}".encode()).hexdigest()[:32]


def _pair_lock_key(username: str, client_ip: str) -> str:
    return f"{KEY_PREFIX}:locked:{_pair_digest(username, client_ip)}"


def _address_lock_key(client_ip: str) -> str:
    return f"{KEY_PREFIX}:locked-address:{_address_digest(client_ip)}"


_REDIS_CLIENTS: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    """The platform's Redis (REDIS_URL, the queues' own), one client per process, with short timeouts: a log-in
    must not hang on it."""
    client = _REDIS_CLIENTS.get(settings.REDIS_URL)
    if client is None:
        client = _REDIS_CLIENTS.setdefault(
            settings.REDIS_URL,
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2),
        )
    return client
