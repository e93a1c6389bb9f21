"""What every benchmark shares: the machine report, Django set-up, real worker processes and figures.

The benchmarks talk to the PostgreSQL and Redis of DATABASE_URL and REDIS_URL (`make bench` points them at the
test services). They create their own users, put their jobs on their own queue (`bench-scans`, through
UNMASK_IMAGE_QUEUE / UNMASK_VIDEO_QUEUE, so a worker of the running platform never takes them) and delete
every scan and user they created at the end.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_QUEUE = "bench-scans"
BENCH_DIR = BASE_DIR / "var" / "bench"


def bench_environment() -> None:
    """Settings every benchmark process (and the workers it starts) runs with."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["UNMASK_IMAGE_QUEUE"] = BENCH_QUEUE
    os.environ["UNMASK_VIDEO_QUEUE"] = BENCH_QUEUE
    # The bench uploads the same files many times; without this the upload rate limit would refuse them.
    os.environ.setdefault("UNMASK_UPLOAD_RATE_LIMIT", "0")
    os.environ.setdefault("UNMASK_UPLOAD_DAILY_QUOTA", "0")
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))


# --- The machine ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """CPU, cores, RAM, TensorFlow version and GPUs of this machine, and the date (UTC)."""
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _memory_gib(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "gpu": ", ".join(gpus) if gpus else "none (TensorFlow sees no GPU)",
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def machine_line(info: dict) -> str:
    return (
        f"measured on {info['date']}: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, TensorFlow {info['tensorflow']}, GPU: {info['gpu']}, "
        f"load average at start {info['load_average']}"
    )


def print_header(title: str) -> dict:
    info = machine()
    print(f"== {title}")
    print(f"   {machine_line(info)}")
    return info


# --- Figures -------------------------------------------------------------------------------------------


def percentile(values: Iterable[float], fraction: float) -> float:
    """Linear-interpolation percentile (`fraction` in [0, 1]) of the values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (it reads as well in a terminal as in the README)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[index]) for row in cells)) for index, header in enumerate(headers)]
    lines = ["| " + " | ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return "-" if value is None else str(value)


# --- Django, database, models ------------------------------------------------------------------------


def setup_django() -> None:
    """Configure Django for this process; create the database when it does not exist yet; migrate; register
    the shipped models (both idempotent)."""
    bench_environment()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        if "does not exist" not in str(exc):
            raise SystemExit(f"Cannot reach the database of DATABASE_URL: {exc}") from exc
        _create_database()
    quiet = io.StringIO()
    call_command("migrate", verbosity=0, interactive=False, stdout=quiet)
    call_command("register_shipped_models", "--keep-active", verbosity=0, stdout=quiet)


def _create_database() -> None:
    import psycopg2
    from django.db import connection

    settings_dict = connection.settings_dict
    maintenance = psycopg2.connect(
        dbname="postgres",
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
    )
    maintenance.autocommit = True
    with maintenance.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{settings_dict["NAME"]}"')  # the name comes from our own settings
    maintenance.close()
    connection.close()


@dataclass
class BenchUsers:
    """Throw-away users: a new owner per upload keeps `scan_create` from reusing an earlier identical scan."""

    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    created: list = field(default_factory=list)
    scans: list = field(default_factory=list)

    def new(self) -> Any:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user(f"{self.prefix}-{len(self.created)}", password=None)
        self.created.append(user)
        return user

    def upload(self, path: Path) -> Any:
        """scan_create for the file as a fresh user's upload (the real service: checks, storage, enqueue)."""
        from django.core.files.uploadedfile import SimpleUploadedFile

        from scans.services import scan_create

        owner = self.new()
        scan = scan_create(owner=owner, uploaded_file=SimpleUploadedFile(path.name, path.read_bytes()))
        self.scans.append(scan)
        return scan

    def clean_up(self) -> None:
        from scans.models import Scan
        from scans.services import scan_delete

        for scan in Scan.objects.filter(owner__in=self.created):
            scan_delete(scan=scan)
        for user in self.created:
            user.delete()
        self.created.clear()
        self.scans.clear()


def wait_done(scan_ids: list, *, timeout_s: float = 600.0, poll_s: float = 0.02) -> list[Any]:
    """Poll until every scan is done or failed; returns the rows. Raises TimeoutError."""
    from scans.models import Scan

    deadline = time.monotonic() + timeout_s
    pending = {str(scan_id) for scan_id in scan_ids}
    while pending:
        finished = Scan.objects.filter(pk__in=pending, status__in=[Scan.Status.DONE, Scan.Status.FAILED])
        pending -= {str(pk) for pk in finished.values_list("pk", flat=True)}
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} scans did not finish within {timeout_s:.0f} s")
        time.sleep(poll_s)
    rows = {str(scan.pk): scan for scan in Scan.objects.filter(pk__in=[str(pk) for pk in scan_ids])}
    return [rows[str(scan_id)] for scan_id in scan_ids]


def analyzer_for_active_models(**kwargs: Any) -> tuple[Any, float]:
    """An in-process Analyzer for the active versions, as a worker builds it (plus load seconds)."""
    from ml.pipeline import Analyzer
    from scans.analyzers import model_spec_for
    from training.models import ModelVersion
    from training.selectors import model_version_active

    image_version = model_version_active(kind=ModelVersion.Kind.IMAGE)
    video_version = model_version_active(kind=ModelVersion.Kind.VIDEO)
    if image_version is None:
        raise SystemExit("No active image model (register_shipped_models did not run?)")
    started = time.perf_counter()
    analyzer = Analyzer(
        model_spec_for(image_version), model_spec_for(video_version) if video_version else None, **kwargs
    )
    return analyzer, time.perf_counter() - started


# --- Worker processes ---------------------------------------------------------------------------------


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM) of a process, in MB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


@dataclass
class Worker:
    """One real `manage.py rqworker ... --worker-class scans.worker.ScanWorker` process."""

    name: str
    process: subprocess.Popen
    log_path: Path
    started: float
    ready_s: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def analyzer_loads(self) -> int:
        """How many times this worker built an Analyzer (loaded models): 1 means once per process."""
        return self.log().count("Loading analyzer")


def _live_bench_workers() -> set[str]:
    from rq import Worker as RQWorker

    from scans.queues import scan_queue

    return {worker.name for worker in RQWorker.all(queue=scan_queue("image"))}


@contextmanager
def workers(count: int = 1, *, env: dict[str, str] | None = None, timeout_s: float = 180.0) -> Iterator[list[Worker]]:
    """Start `count` real worker processes on the bench queue, wait until each has loaded its models and
    registered, yield them, and stop them (SIGTERM: RQ's warm shutdown) afterwards."""
    bench_environment()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    started_workers: list[Worker] = []
    try:
        for number in range(count):
            name = f"bench-{os.getpid()}-{number}-{uuid.uuid4().hex[:6]}"
            log_path = BENCH_DIR / f"{name}.log"
            with log_path.open("w") as log_file:
                process = subprocess.Popen(  # noqa: S603 - our own manage.py
                    [
                        sys.executable,
                        "manage.py",
                        "rqworker",
                        BENCH_QUEUE,
                        "--worker-class",
                        "scans.worker.ScanWorker",
                        "--name",
                        name,
                    ],
                    cwd=BASE_DIR,
                    env={**os.environ, **(env or {})},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            started_workers.append(Worker(name=name, process=process, log_path=log_path, started=time.perf_counter()))
        deadline = time.monotonic() + timeout_s
        # A ScanWorker registers only after it has loaded the models, so "registered" means "ready".
        while any(worker.ready_s is None for worker in started_workers):
            live = _live_bench_workers()
            for worker in started_workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"a worker exited with {worker.process.returncode}:\n{worker.log()[-3000:]}")
                if worker.ready_s is None and worker.name in live:
                    worker.ready_s = time.perf_counter() - worker.started
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not become ready in time")
            time.sleep(0.05)
        yield started_workers
    finally:
        for worker in started_workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in started_workers:
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
