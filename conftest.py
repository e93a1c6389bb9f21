"""Shared test fixtures: real PostgreSQL and Redis, temporary media, the three users of access tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import redis
    from django.contrib.auth.models import AbstractBaseUser
    from rest_framework.test import APIClient
    from rq.worker import Worker

    from ml.pipeline import ModelSpec
    from scans.tests.processes import ProcessStarter
    from scans.worker import ScanWorker
    from training.models import ModelVersion
    from webhooks.worker import WebhookWorker


def _check_services() -> None:
    """Fail the run at once, saying which service is missing and how to start it (never skip)."""
    from django.conf import settings

    problems = []
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        problems.append(
            "DATABASE_URL does not point at PostgreSQL (tests run against the real database); "
            "use `make test` or set DATABASE_URL=postgres://postgres@127.0.0.1:5432/unmask"
        )
    else:
        import psycopg2

        try:
            psycopg2.connect(
                host=database["HOST"] or "127.0.0.1",
                port=database["PORT"] or 5432,
                user=database["USER"],
                password=database["PASSWORD"],
                dbname="postgres",
                connect_timeout=5,
            ).close()
        except psycopg2.OperationalError as exc:
            problems.append(
                f"PostgreSQL is unreachable at {database['HOST']}:{database['PORT']} ({exc}). Start it, e.g. "
                "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set DATABASE_URL."
            )
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(
            f"Redis is unreachable at {settings.REDIS_URL} ({exc}). Start it, e.g. "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`, or set REDIS_URL."
        )
    if problems:
        pytest.exit("Test services missing:\n  - " + "\n  - ".join(problems), returncode=3)


def pytest_sessionstart(session: pytest.Session) -> None:
    _check_services()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real media (UNMASK_DATA_DIR); tests that need it are skipped, saying why, where it is absent."""
    from django.conf import settings

    path = Path(settings.UNMASK_DATA_DIR)
    if not (path / "images").is_dir():
        pytest.skip(f"real media not available: UNMASK_DATA_DIR={path} has no images/ (see README, Testing)")
    return path


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path: Path) -> Path:
    """Every test writes uploads and model copies under its own temporary folder."""
    media_root = tmp_path / "media"
    model_root = tmp_path / "models"
    settings.MEDIA_ROOT = media_root
    settings.MODEL_ROOT = model_root
    storages = dict(settings.STORAGES)
    storages["models"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(model_root), "base_url": None},
    }
    settings.STORAGES = storages
    return media_root


@pytest.fixture
def alice(django_user_model):
    """The owner in access-control tests."""
    return django_user_model.objects.create_user("alice", "alice@example.com", "correct-horse-battery-1")


@pytest.fixture
def bob(django_user_model):
    """Another signed-up user, who must never see alice's scans."""
    return django_user_model.objects.create_user("bob", "bob@example.com", "correct-horse-battery-2")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """A fast hasher for test users: the default PBKDF2 costs most of a second per user created or logged in."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _login_limits_reset(settings) -> Iterator[None]:
    """Every test starts with no failed log-ins counted: the limits live in Redis, which outlives a test."""
    import redis

    from accounts.throttling import KEY_PREFIX

    def clear() -> None:
        connection = redis.Redis.from_url(settings.REDIS_URL)
        try:
            keys = list(connection.scan_iter(f"{KEY_PREFIX}:*", count=1000))
            if keys:
                connection.delete(*keys)
        finally:
            connection.close()

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def _private_model_storage(_private_media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `ModelVersion.weights` write under the test's temporary folder too.

    A FileField instantiates its storage once, when the model class is defined, so the STORAGES override
    above does not reach it; without this, registering a model in a test would copy weights into var/.
    """
    from django.core.files.storage import storages

    from training.models import ModelVersion

    monkeypatch.setattr(ModelVersion._meta.get_field("weights"), "storage", storages["models"])


@pytest.fixture
def redis_conn(settings) -> Iterator[redis.Redis]:
    """The test Redis database (REDIS_URL, which the `scans` queue uses), flushed before and after the test."""
    import redis
    from redis.connection import parse_url

    if int(parse_url(settings.REDIS_URL).get("db") or 0) == 0:
        pytest.fail(
            f"REDIS_URL={settings.REDIS_URL} is Redis database 0, which tests would flush; "
            "point it at a dedicated database, e.g. redis://127.0.0.1:6379/15 (as `make test` does)"
        )
    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture(scope="session")
def _tiny_model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelSpec, ModelSpec]:
    """Tiny untrained image and video models, built once per test session (a few seconds)."""
    from ml.testing import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


def _register_and_activate(specs: tuple[ModelSpec, ModelSpec]) -> tuple[ModelVersion, ModelVersion]:
    from training.services import model_version_register

    registered = []
    for kind, spec in zip(("image", "video"), specs, strict=True):
        name, version = spec.label.split("@", 1)
        registered.append(
            model_version_register(
                kind=kind,
                name=name,
                version=version,
                weights_path=Path(spec.weights_path),
                settings=spec.settings,
                training_notes="tiny untrained model built by the test suite",
                activate=True,
            )
        )
    return tuple(registered)


@pytest.fixture
def tiny_models(db, _tiny_model_files: tuple[ModelSpec, ModelSpec]) -> tuple[ModelVersion, ModelVersion]:
    """Registers and activates the tiny image and video models; returns their (image, video) ModelVersions.

    Their scores are meaningless (random weights) but real in shape, so platform tests run the whole
    pipeline (MTCNN included) in about a second per scan. They have the manipulation-type head.
    """
    return _register_and_activate(_tiny_model_files)


@pytest.fixture(scope="session")
def _tiny_model_files_without_head(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelSpec, ModelSpec]:
    from ml.testing import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models-no-head"), manipulation_types=())


@pytest.fixture
def tiny_models_without_head(
    db, _tiny_model_files_without_head: tuple[ModelSpec, ModelSpec]
) -> tuple[ModelVersion, ModelVersion]:
    """Like `tiny_models`, without the manipulation-type head: what the shipped v1 models are."""
    return _register_and_activate(_tiny_model_files_without_head)


def _run_pending_on_commit_callbacks() -> None:
    """The test's database transaction never commits, so Django holds back the `on_commit` callbacks that
    enqueue jobs; run them now, as a commit would."""
    from django.db import connection

    pending, connection.run_on_commit = connection.run_on_commit, []
    for _savepoint_ids, callback, _robust in pending:
        callback()


def _work_in_burst(worker: Worker) -> Worker:
    """Let `worker` drain its queues in this process, then give pytest its own signal handlers back."""
    import signal

    # The worker installs its own SIGINT/SIGTERM handlers.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    # The job counters live in Redis; read them back so tests can assert on them.
    worker.refresh()
    return worker


@pytest.fixture
def run_worker(redis_conn: redis.Redis) -> Callable[[], ScanWorker]:
    """Runs the queued scan jobs with a real `ScanWorker` in burst mode against the test Redis; returns the worker
    (`successful_job_count` and `failed_job_count` say how its jobs ended).

    Pending `on_commit` callbacks run first (as a commit would), then the worker drains the queue. The worker
    runs in this process and shares the test's database connection, so it sees the test's rows.
    """
    import django_rq

    from scans.queues import SCAN_QUEUE
    from scans.worker import ScanWorker

    def run() -> ScanWorker:
        _run_pending_on_commit_callbacks()
        return _work_in_burst(
            ScanWorker([django_rq.get_queue(SCAN_QUEUE, connection=redis_conn)], connection=redis_conn)
        )

    return run


@pytest.fixture
def run_webhook_worker(redis_conn: redis.Redis) -> Callable[[], WebhookWorker]:
    """Like `run_worker`, for the webhook queue (UNMASK_WEBHOOK_QUEUE) with a real `WebhookWorker`."""
    import django_rq
    from django.conf import settings

    from webhooks.worker import WebhookWorker

    def run() -> WebhookWorker:
        _run_pending_on_commit_callbacks()
        queue = django_rq.get_queue(settings.UNMASK_WEBHOOK_QUEUE, connection=redis_conn)
        return _work_in_burst(WebhookWorker([queue], connection=redis_conn))

    return run


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[ProcessStarter]:
    """`start_process(name, args, **environment)`: a real subprocess against the committed test database and Redis
    (use with `django_db(transaction=True)`), in a process group of its own, logged to `<tmp_path>/<name>.log`;
    every group started is killed at the end of the test."""
    from scans.tests.processes import ProcessStarter

    logs = tmp_path / "process-logs"
    logs.mkdir()
    starter = ProcessStarter(logs)
    yield starter
    starter.stop_all()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts how often media is decoded to pixels: every call of `ml.faces.load_image` (photos) and
    `ml.faces.iter_video_frames` (videos), wherever a module of the project imported them from."""
    import sys

    from ml import faces

    counts = {"load_image": 0, "iter_video_frames": 0}
    for name in counts:
        original = getattr(faces, name)

        def counted(*args: object, _name: str = name, _original: Callable = original, **kwargs: object) -> object:
            counts[_name] += 1
            return _original(*args, **kwargs)

        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith(("ml", "scans")) and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return counts


@pytest.fixture
def api_client_for(db) -> Callable[[AbstractBaseUser | None], APIClient]:
    """`api_client_for(user)`: a DRF client authenticated with the user's real API token; None: anonymous."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def make(user: AbstractBaseUser | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _created = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make
