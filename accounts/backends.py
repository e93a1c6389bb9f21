"""The authentication backend: Django's own, behind the brute-force limits of `accounts.throttling`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.throttling import (
    LoginLockedOut,
    client_ip,
    login_failure_register,
    login_lockout_check,
    login_lockout_remember,
    login_success_register,
)


class ThrottledModelBackend(ModelBackend):
    """`ModelBackend` that refuses a locked-out (username, address) pair or address before checking any password,
    and counts each failure and success.

    A backend, rather than a check in each view, so that every password log-in is covered: the log-in page, the
    token API and the admin's log-in page alike. A refusal raises `PermissionDenied`, which makes Django's
    `authenticate()` return None at once (no other backend is asked); the lockout is left on the request, and the
    log-in page and the token API answer 429 with Retry-After from it (`accounts.throttling.login_lockout_of`).
    Calls without a request (none in this project) are not limited: there is no client address to key them on.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if request is None or username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        address = client_ip(request)
        try:
            login_lockout_check(username=username, client_ip=address)
        except LoginLockedOut as lockout:
            login_lockout_remember(request, lockout)
            raise PermissionDenied from None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            lockout = login_failure_register(username=username, client_ip=address)
            if lockout is not None:
                login_lockout_remember(request, lockout)
            return None
        login_success_register(username=username, client_ip=address)
        return user
