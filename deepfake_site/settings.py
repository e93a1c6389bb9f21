"""Unmask settings: one module, driven by environment variables (see .env.example and the README)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = envbool("DJANGO_DEBUG", False)
# The fallback (also for an empty DJANGO_SECRET_KEY) is for local development only: `check --deploy` fails on it
# and the WSGI entry point refuses to serve with it while DEBUG is off (deepfake_site.checks).
SECRET_KEY = env("DJANGO_SECRET_KEY") or "django-insecure-unmask-local-development-only-key-change-me"
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_rq",
    # The API's OpenAPI schema (/api/v1/schema/) and its Swagger UI, served from the package (no CDN).
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # The project's own deployment checks (deepfake_site.checks).
    "deepfake_site",
    "accounts",
    "training",
    "scans",
    "webhooks",
    "newsroom",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "deepfake_site.security.ContentSecurityPolicyMiddleware",
    # Before anything reads the body (the CSRF check does): see its docstring.
    "deepfake_site.security.UploadSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "deepfake_site.urls"
WSGI_APPLICATION = "deepfake_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Where nothing is configured the platform runs on a SQLite file under var/ (the embedded default of
# `make run`); DATABASE_URL=postgres://... selects PostgreSQL, which the tests and production use.
VAR_DIR = Path(env("UNMASK_VAR_DIR", str(BASE_DIR / "var")))
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Django's own backend behind the brute-force limits (accounts.throttling), for every password log-in.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
# Brute-force protection of log-in (page, token API, admin), counted in Redis: a (username, client address) pair
# is locked out for UNMASK_LOGIN_LOCKOUT_SECONDS after UNMASK_LOGIN_FAILURE_LIMIT failures within that window; an
# address whose failures named UNMASK_LOGIN_IP_USERNAME_LIMIT different usernames is locked out for every one.
UNMASK_LOGIN_FAILURE_LIMIT = envint("UNMASK_LOGIN_FAILURE_LIMIT", 5)
UNMASK_LOGIN_LOCKOUT_SECONDS = envint("UNMASK_LOGIN_LOCKOUT_SECONDS", 900)
UNMASK_LOGIN_IP_USERNAME_LIMIT = envint("UNMASK_LOGIN_IP_USERNAME_LIMIT", 20)
# Reverse proxies in front of Django that append the address they saw to X-Forwarded-For (compose: 1, its nginx).
# 0 takes the client's address from the connection (REMOTE_ADDR) and ignores the header, which a client can forge.
UNMASK_PROXY_COUNT = envint("UNMASK_PROXY_COUNT", 0)

# E-mail (password reset links). Without an SMTP host the messages are written to the console (the web
# process' output), which is what a local `make run` needs; set DJANGO_EMAIL_HOST for real delivery.
EMAIL_HOST = env("DJANGO_EMAIL_HOST", "")
EMAIL_PORT = envint("DJANGO_EMAIL_PORT", 587)
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("DJANGO_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = envint("DJANGO_EMAIL_TIMEOUT", 10)
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "Unmask <unmask@localhost>")

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "scans:dashboard"
LOGOUT_REDIRECT_URL = "landing"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))

# Uploaded media and model weights are private: MEDIA_URL is never routed, files are only ever
# read by the worker or streamed through an authenticated view.
MEDIA_ROOT = Path(env("UNMASK_MEDIA_ROOT", str(VAR_DIR / "media")))
MODEL_ROOT = Path(env("UNMASK_MODEL_ROOT", str(VAR_DIR / "models")))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # No explicit location: the storage follows MEDIA_ROOT, so tests can point it at a temp dir.
        "OPTIONS": {},
    },
    "models": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MODEL_ROOT), "base_url": None},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "scans": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": envint("UNMASK_VIDEO_JOB_TIMEOUT", 900)},
}
RQ_SHOW_ADMIN_LINK = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    # Summaries and the 401/403 answers of every operation (deepfake_site/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "deepfake_site.openapi.document_operations",
    ],
    "TITLE": "Unmask API",
    "DESCRIPTION": "Upload a face photo or video and learn whether it is real or a deepfake.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Schema completeness is checked by scans/tests/test_api_schema.py, not by `check --deploy`, which is about
    # the deployment's security settings.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # Scans and cases both have a `status`, with different choices: each gets a name of its own.
    "ENUM_NAME_OVERRIDES": {
        "ScanStatusEnum": "scans.models.Scan.Status",
        "CaseStatusEnum": "newsroom.models.Case.Status",
    },
}

# --- Unmask ---------------------------------------------------------------------------------------
# Real media for tests, training and evaluation (read-only; never copied into the project).
UNMASK_DATA_DIR = Path(env("UNMASK_DATA_DIR", str(BASE_DIR.parent / "shared" / "data")))
# Pretrained backbones for training (the ImageNet MobileNetV2 the image model is fine-tuned from).
UNMASK_WEIGHTS_DIR = Path(env("UNMASK_WEIGHTS_DIR", str(BASE_DIR.parent / "shared" / "weights")))
UNMASK_MAX_IMAGE_BYTES = envint("UNMASK_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
UNMASK_MAX_VIDEO_BYTES = envint("UNMASK_MAX_VIDEO_BYTES", 200 * 1024 * 1024)
UNMASK_MAX_IMAGE_PIXELS = envint("UNMASK_MAX_IMAGE_PIXELS", 40_000_000)
# Pixels of one video frame (default DCI 4K, 4096x2160), read from the headers before any frame is decoded: the
# upload check decodes one frame, which costs about 7 bytes a pixel, so this bounds its memory (~60-100 MB).
UNMASK_MAX_VIDEO_PIXELS = envint("UNMASK_MAX_VIDEO_PIXELS", 4096 * 2160)
UNMASK_VIDEO_FRAMES = envint("UNMASK_VIDEO_FRAMES", 32)
UNMASK_IMAGE_JOB_TIMEOUT = envint("UNMASK_IMAGE_JOB_TIMEOUT", 180)
UNMASK_VIDEO_JOB_TIMEOUT = envint("UNMASK_VIDEO_JOB_TIMEOUT", 900)
UNMASK_TF_THREADS = envint("UNMASK_TF_THREADS", 0)  # 0: let TensorFlow pick from the core count
# The RQ queues image and video analyses go to. Both default to "scans", which every worker serves; set
# UNMASK_VIDEO_QUEUE=videos and start GPU workers with `manage.py scan_worker videos scans` to send videos to GPUs.
UNMASK_IMAGE_QUEUE = env("UNMASK_IMAGE_QUEUE", "scans")
UNMASK_VIDEO_QUEUE = env("UNMASK_VIDEO_QUEUE", "scans")
for _scan_queue_name in (UNMASK_IMAGE_QUEUE, UNMASK_VIDEO_QUEUE):
    RQ_QUEUES.setdefault(_scan_queue_name, {"URL": REDIS_URL, "DEFAULT_TIMEOUT": UNMASK_VIDEO_JOB_TIMEOUT})
# Worker liveness (scans.heartbeats): every worker beats every UNMASK_WORKER_HEARTBEAT_INTERVAL seconds, also while
# it runs a job, and counts as dead UNMASK_WORKER_HEARTBEAT_TTL seconds after its last beat (health stops counting
# it, and RQ hands its job to the failure callback, which runs the scan once more). The reconciler looks every
# UNMASK_RECONCILE_INTERVAL seconds, so a dead worker's scan is noticed within TTL + interval (45 s by default).
UNMASK_WORKER_HEARTBEAT_INTERVAL = envfloat("UNMASK_WORKER_HEARTBEAT_INTERVAL", 5.0)
UNMASK_WORKER_HEARTBEAT_TTL = envint("UNMASK_WORKER_HEARTBEAT_TTL", 30)
UNMASK_RECONCILE_INTERVAL = envfloat("UNMASK_RECONCILE_INTERVAL", 15.0)
# Larger uploads go to a temporary file instead of memory while the request is read.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The worker class `manage.py rqworker` uses when no --worker-class is given: scans.worker.ScanWorker runs jobs
# in the worker process (TensorFlow is not fork-safe) with the models loaded once; see its docstring.
RQ = {"WORKER_CLASS": "scans.worker.ScanWorker"}

# --- Security -------------------------------------------------------------------------------------
# Production runs behind an HTTPS proxy: DJANGO_SECURE=1 turns on the HTTPS-only settings that
# `manage.py check --deploy` expects. Left off, `make run` keeps working over plain HTTP on loopback.
SECURE_ENABLED = envbool("DJANGO_SECURE", False)
SECURE_SSL_REDIRECT = SECURE_ENABLED
SESSION_COOKIE_SECURE = SECURE_ENABLED
CSRF_COOKIE_SECURE = SECURE_ENABLED
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 31_536_000) if SECURE_ENABLED else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_ENABLED
SECURE_HSTS_PRELOAD = SECURE_ENABLED and envbool("DJANGO_HSTS_PRELOAD", True)
# Opting out of the preload list (DJANGO_HSTS_PRELOAD=0) is a deliberate choice, not something to warn about.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or not SECURE_ENABLED else ["security.W021"]
# Trust X-Forwarded-Proto only behind a proxy that sets it (DJANGO_SECURE=1 means there is one).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_ENABLED else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Stored files are streamed by an authenticated view; with a reverse proxy, set this to its internal location
# (e.g. "/protected-media/", mapped onto MEDIA_ROOT) and the view answers with X-Accel-Redirect instead.
UNMASK_MEDIA_ACCEL_REDIRECT = env("UNMASK_MEDIA_ACCEL_REDIRECT", "")
# Uploads per user: at most UNMASK_UPLOAD_RATE_LIMIT attempts per UNMASK_UPLOAD_RATE_WINDOW seconds, and at most
# UNMASK_UPLOAD_DAILY_QUOTA accepted scans per UTC day; counted in Redis, so they hold across web processes.
# 0 turns a limit off.
UNMASK_UPLOAD_RATE_LIMIT = envint("UNMASK_UPLOAD_RATE_LIMIT", 30)
UNMASK_UPLOAD_RATE_WINDOW = envint("UNMASK_UPLOAD_RATE_WINDOW", 60)
UNMASK_UPLOAD_DAILY_QUOTA = envint("UNMASK_UPLOAD_DAILY_QUOTA", 500)
# FFmpeg (inside OpenCV) may only open local files: a playlist or concat file can never make it fetch a URL.
# OpenCV reads this variable each time it opens a capture, in the web process (upload checks) and the worker.
os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "protocol_whitelist;file"


# --- Webhooks, metrics, logs (the webhooks app, scans.metrics, scans.log_context) -----------------
# Webhook deliveries are RQ jobs on a queue of their own, served by `manage.py webhook_worker` (a pool of
# UNMASK_WEBHOOK_WORKERS processes), never by the scan workers: a slow receiver can then hold up other deliveries
# at most, never a scan. Retries wait UNMASK_WEBHOOK_RETRY_INTERVALS seconds (one entry per retry), which the
# webhook workers' RQ scheduler runs.
UNMASK_WEBHOOK_QUEUE = env("UNMASK_WEBHOOK_QUEUE", "webhooks")
RQ_QUEUES.setdefault(UNMASK_WEBHOOK_QUEUE, {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 120})
UNMASK_WEBHOOK_WORKERS = envint("UNMASK_WEBHOOK_WORKERS", 4)
# Seconds to connect, and then for each read of the answer (a socket timeout); a delivery job is stopped after
# twice this plus 10 s whatever the receiver does.
UNMASK_WEBHOOK_TIMEOUT = envfloat("UNMASK_WEBHOOK_TIMEOUT", 5.0)
# Deliveries of one user in flight at once (RQ's concurrency limit; the rest wait their turn); 0 is no limit.
UNMASK_WEBHOOK_CONCURRENCY_PER_USER = envint("UNMASK_WEBHOOK_CONCURRENCY_PER_USER", 2)
# Circuit breaker: an endpoint whose last N delivery attempts all failed is paused until its owner resumes it.
UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES = envint("UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES", 10)
UNMASK_WEBHOOK_RETRY_INTERVALS = [
    int(seconds) for seconds in envlist("UNMASK_WEBHOOK_RETRY_INTERVALS", "10,60,300,1800")
]
UNMASK_WEBHOOK_MAX_ENDPOINTS = envint("UNMASK_WEBHOOK_MAX_ENDPOINTS", 10)
# Off unless set, whatever DEBUG says: a webhook may not target loopback, private, unspecified, multicast or
# reserved addresses, at registration and at every delivery hop after DNS (no SSRF into the platform's own
# network). Tests and a developer whose receivers run on loopback set it to 1 explicitly. Link-local addresses
# (cloud metadata at 169.254.169.254) are refused even then (scans.destinations).
UNMASK_WEBHOOK_ALLOW_PRIVATE = envbool("UNMASK_WEBHOOK_ALLOW_PRIVATE", False)
# Scans by URL (POST /api/v1/scans/ with `source_url`, the dashboard's link field): the worker downloads the link
# (or the image or video a page embeds) within these limits. The same address policy as webhooks, on every hop:
# off unless set, loopback, private and reserved addresses are refused (tests set it to serve media from
# loopback); link-local and cloud metadata addresses always.
UNMASK_URL_SCAN_ALLOW_PRIVATE = envbool("UNMASK_URL_SCAN_ALLOW_PRIVATE", False)
# Seconds the whole download may take (connecting, every redirect, a page and the media it embeds).
UNMASK_URL_SCAN_TIMEOUT = envfloat("UNMASK_URL_SCAN_TIMEOUT", 30.0)
# Bytes one download may have; the upload limits of its kind (UNMASK_MAX_IMAGE_BYTES, ...) apply after it too.
UNMASK_URL_SCAN_MAX_BYTES = envint("UNMASK_URL_SCAN_MAX_BYTES", UNMASK_MAX_VIDEO_BYTES)
# Batches (POST /api/v1/batches/, the dashboard's batch page): files per batch and declared request size.
# Each file also counts against the upload rate limit and daily quota above.
UNMASK_BATCH_MAX_FILES = envint("UNMASK_BATCH_MAX_FILES", 50)
UNMASK_BATCH_MAX_BYTES = envint("UNMASK_BATCH_MAX_BYTES", 500 * 1024 * 1024)
# UNMASK_LOG_FORMAT=json writes one JSON object per log line (for a log collector); "plain" is for people.
UNMASK_LOG_FORMAT = env("UNMASK_LOG_FORMAT", "plain")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # scan_id: the scan whose job wrote the line ("-" outside one), added by scans.log_context.ScanIdFilter.
    "filters": {
        "scan_id": {"()": "scans.log_context.ScanIdFilter"},
        "rq_housekeeping": {"()": "scans.log_context.RqHousekeepingFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s scan=%(scan_id)s %(message)s"},
        "json": {"()": "scans.log_context.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if UNMASK_LOG_FORMAT == "json" else "plain",
            "filters": ["rq_housekeeping", "scan_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
