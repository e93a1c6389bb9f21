"""This project's own deployment check, beside Django's `check --deploy`: a secret key that anyone can know is an
error, not a warning, and production (DEBUG off) refuses to serve with one (`deepfake_site.wsgi`).

Django only warns (security.W009) about a weak key. Here a known key is fatal: with it anyone can forge session
cookies and password-reset links, so every account would be open.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

# Django marks the keys it generates for development this way; the settings' fallback key carries it too.
DEVELOPMENT_KEY_PREFIX = "django-insecure-"
# Published values people copy: .env.example's placeholder before it was left empty.
PUBLIC_SECRET_KEYS = frozenset({"change-me-to-a-long-random-string"})
HOW_TO_SET_THE_KEY = (
    "Set DJANGO_SECRET_KEY to a long random value, e.g. the output of "
    "python -c 'import secrets; print(secrets.token_urlsafe(50))', and keep it secret."
)


def secret_key_problem(secret_key: str) -> str:
    """Why `secret_key` must not sign anything in production, or "" when it may."""
    if not secret_key:
        return "SECRET_KEY is empty."
    if secret_key.startswith(DEVELOPMENT_KEY_PREFIX):
        return (
            f"SECRET_KEY is a development key (it starts with {DEVELOPMENT_KEY_PREFIX!r}): DJANGO_SECRET_KEY is "
            "not set, or set to such a key."
        )
    if secret_key in PUBLIC_SECRET_KEYS:
        return "SECRET_KEY is the placeholder from .env.example, which anyone can read."
    return ""


@register(Tags.security, deploy=True)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`check --deploy`: an error (exit status 1) for a missing, development or published secret key."""
    problem = secret_key_problem(settings.SECRET_KEY)
    return [Error(problem, hint=HOW_TO_SET_THE_KEY, id="unmask.E001")] if problem else []


def refuse_to_serve_with_a_known_secret_key() -> None:
    """Raise `ImproperlyConfigured` when DEBUG is off and the secret key is missing, a development key or public.

    Called by the WSGI entry point, which gunicorn (and runserver) load before serving anything: gunicorn runs no
    system checks, so this is what stops a production web server from starting with such a key.
    """
    if settings.DEBUG:
        return
    problem = secret_key_problem(settings.SECRET_KEY)
    if problem:
        raise ImproperlyConfigured(f"Refusing to serve with DJANGO_DEBUG off: {problem} {HOW_TO_SET_THE_KEY}")
