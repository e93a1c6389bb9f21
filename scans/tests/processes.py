"""Real processes for the tests that need them (workers, the launcher, a reconciler): started against the committed
test database and Redis, each in a process group of its own, logged to a file, and killed, group and all, at the
end of the test (the `start_process` fixture)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, "manage.py"]


def process_environment(**overrides: str) -> dict[str, str]:
    """The environment of a subprocess that shares the test's database, Redis, media and model folders."""
    database = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
        "UNMASK_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "UNMASK_MODEL_ROOT": str(settings.MODEL_ROOT),
        "UNMASK_TF_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


class ProcessStarter:
    """Starts subprocesses in sessions of their own, logging each to `<logs>/<name>.log`; `stop_all` kills every
    process group it started, so nothing a test started outlives it (a worker's scheduler included)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def __call__(self, name: str, args: list[str], **environment: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603
            args,
            cwd=REPOSITORY_ROOT,
            env=process_environment(**environment),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def log_tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.logs.glob("*.log")))


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str, logs: Path | None = None) -> float:
    """Poll `condition` until it holds; returns the seconds it took, or fails the test with the process logs."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    tails = ProcessStarter(logs).log_tails() if logs else ""
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tails}")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pid_exists(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
