"""Production settings pass `manage.py check --deploy`, which fails (as the web application refuses to start) on a
secret key anyone can know; every response carries a Content-Security-Policy."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from deepfake_site.checks import secret_key_problem
from deepfake_site.security import CONTENT_SECURITY_POLICY

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def _production_environment(**overrides: str) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "UNMASK_MEDIA_ACCEL"))
    }
    environment.update(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE": "1",
            "DJANGO_ALLOWED_HOSTS": "unmask.example.com",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://unmask.example.com",
        }
    )
    environment.update(overrides)
    return environment


def _manage(*arguments: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_production_settings():
    completed = _manage("check", "--deploy", "--fail-level", "WARNING", environment=_production_environment())

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no issues" in completed.stdout


def test_check_deploy_flags_the_local_development_defaults():
    """The check is not vacuous: the plain-HTTP `make run` settings fail it."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}

    completed = _manage("check", "--deploy", "--fail-level", "WARNING", environment=environment)

    assert completed.returncode != 0
    for check_id in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert check_id in completed.stderr


@pytest.mark.parametrize(
    ("secret_key", "reason"),
    [
        (None, "SECRET_KEY is a development key"),
        ("", "SECRET_KEY is a development key"),
        ("change-me-to-a-long-random-string", "SECRET_KEY is the placeholder from .env.example"),
    ],
    ids=["unset", "empty", "env-example-placeholder"],
)
def test_check_deploy_fails_with_an_error_for_a_missing_or_known_secret_key(secret_key, reason):
    environment = _production_environment()
    if secret_key is None:
        del environment["DJANGO_SECRET_KEY"]
    else:
        environment["DJANGO_SECRET_KEY"] = secret_key

    completed = _manage("check", "--deploy", environment=environment)

    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert f"(unmask.E001) {reason}" in completed.stderr
    assert "DJANGO_SECRET_KEY to a long random value" in completed.stderr


@pytest.mark.parametrize(
    ("secret_key", "refused"),
    [
        ("", True),
        ("django-insecure-5x#q@generated-by-startproject-for-development-only-0123", True),
        ("change-me-to-a-long-random-string", True),
        ("short-but-custom", False),
        (secrets.token_urlsafe(50), False),
    ],
)
def test_a_secret_key_is_refused_when_it_is_missing_a_development_key_or_published(secret_key, refused):
    assert bool(secret_key_problem(secret_key)) is refused


def _start_web_application(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Load the WSGI entry point as gunicorn does, and stop."""
    return subprocess.run(
        [sys.executable, "-c", "import deepfake_site.wsgi"],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_web_application_refuses_to_start_in_production_without_a_real_secret_key():
    environment = _production_environment()
    del environment["DJANGO_SECRET_KEY"]

    refused = _start_web_application(environment)
    production = _start_web_application(_production_environment())
    local = _start_web_application({**environment, "DJANGO_DEBUG": "1", "DJANGO_SECURE": "0"})

    assert refused.returncode != 0
    assert "ImproperlyConfigured: Refusing to serve with DJANGO_DEBUG off: SECRET_KEY is a development key" in (
        refused.stderr
    )
    assert production.returncode == 0, production.stderr
    assert local.returncode == 0, local.stderr


def test_production_settings_turn_on_https_only_cookies_hsts_and_the_proxy_header():
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'debug': s.DEBUG, 'redirect': s.SECURE_SSL_REDIRECT, 'session': s.SESSION_COOKIE_SECURE, "
        "'csrf': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS, 'proxy': s.SECURE_PROXY_SSL_HEADER}))"
    )

    completed = _manage("shell", "-c", script, environment=_production_environment())

    assert completed.returncode == 0, completed.stderr
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    assert values == {
        "debug": False,
        "redirect": True,
        "session": True,
        "csrf": True,
        "hsts": 31_536_000,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


@pytest.mark.django_db
def test_plain_http_keeps_working_locally(client):
    response = client.get(reverse("landing"))

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response


@pytest.mark.django_db
def test_with_https_settings_http_is_redirected_and_https_gets_hsts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    plain = client.get(reverse("landing"))
    proxied = client.get(reverse("landing"), HTTP_X_FORWARDED_PROTO="https")

    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"].startswith("max-age=3600")


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["landing", "accounts:login", "accounts:signup", "api:health"])
def test_public_pages_and_the_api_carry_the_content_security_policy(client, url_name, redis_conn):
    response = client.get(reverse(url_name))

    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_signed_in_pages_carry_the_content_security_policy(client, alice):
    client.force_login(alice)

    response = client.get(reverse("scans:dashboard"))

    policy = response["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy


def test_the_policy_allows_no_inline_or_remote_script():
    directives = dict(directive.strip().split(" ", 1) for directive in CONTENT_SECURITY_POLICY.split(";"))

    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert "http" not in CONTENT_SECURITY_POLICY
