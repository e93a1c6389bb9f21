"""Load benchmark (not a test): concurrent users uploading, polling and browsing history over loopback.

    .venv/bin/python bench/load.py [--users 20] [--duration 120] [--ramp 5] [--workers 1] [--tf-threads 1]
                                   [--server runserver|gunicorn] [--web-processes 2] [--web-threads 8]

It starts its own web server and RQ worker(s) against DATABASE_URL and
REDIS_URL (run `manage.py migrate` and `register_shipped_models` on that database first), with the upload
rate limit and quota off for the run, and creates `bench-user-N` accounts with API tokens. The users start
evenly over `--ramp` seconds (all at once would measure one burst of 20 simultaneous uploads). Each user loops: upload a small photo-sized image, poll the scan every second until it finishes (or 10 polls),
view the first page of its history, then think for 1-3 s. At the end it prints requests/s, p50/p95/p99
latency per endpoint and the error rate, then waits for every scan of the run to finish and says how many
did not. Targets (issue 5): 0 errors, upload p95 <= 50 ms (the request only stores and enqueues).
The standard library only: no load-testing package is needed.

The web server is `manage.py runserver` (one process, a thread per request: the development setup) or,
with `--server gunicorn`, gunicorn as production runs it: `--web-processes` processes of `--web-threads`
threads each (gthread workers).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


@dataclass
class Stats:
    """Latencies (seconds) and error counts per endpoint, shared by all user threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # HTTP status of each error (0: no response), per endpoint.
    error_statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    scan_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, ok: bool, status: int = 0) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            if not ok:
                self.errors[endpoint] += 1
                self.error_statuses[endpoint][status] += 1


def _photo_png() -> bytes:
    """A 320x240 gradient PNG: photo-sized, quick to analyse (no face), valid for the content checks."""
    import numpy as np
    from PIL import Image

    horizontal = np.linspace(0, 255, 320, dtype=np.uint8)[None, :].repeat(240, axis=0)
    vertical = np.linspace(255, 0, 240, dtype=np.uint8)[:, None].repeat(320, axis=1)
    pixels = np.stack([horizontal, vertical, np.full_like(horizontal, 128)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(content: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class User(threading.Thread):
    """One simulated user with its own keep-alive connection and API token."""

    def __init__(
        self, *, host: str, port: int, token: str, stats: Stats, start_at: float, stop_at: float, photo: bytes
    ) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.token = host, port, token
        self.stats, self.start_at, self.stop_at, self.photo = stats, start_at, stop_at, photo
        self.connection = http.client.HTTPConnection(host, port, timeout=30)

    def request(self, endpoint: str, method: str, path: str, body: bytes | None = None, content_type: str = ""):
        headers = {"Authorization": f"Token {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        started = time.perf_counter()
        reused = self.connection.sock is not None
        try:
            status, payload = self._send(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the idle keep-alive connection (gunicorn after --keep-alive seconds) just as
            # this request went out: no response was started, so a client sends it again on a new connection,
            # as browsers and urllib3 do. The latency counts both tries.
            self._reconnect()
            if not reused:
                status, payload = 0, b""
            else:
                try:
                    status, payload = self._send(method, path, body, headers)
                except (OSError, http.client.HTTPException):
                    self._reconnect()
                    status, payload = 0, b""
        except (OSError, http.client.HTTPException):
            self._reconnect()
            status, payload = 0, b""
        self.stats.record(endpoint, time.perf_counter() - started, ok=200 <= status < 300, status=status)
        return status, payload

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def _reconnect(self) -> None:
        self.connection.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.monotonic()))
        while time.monotonic() < self.stop_at:
            body, content_type = _multipart(self.photo, "bench.png")
            status, payload = self.request("POST /api/v1/scans/", "POST", "/api/v1/scans/", body, content_type)
            if status == 202:
                scan_id = json.loads(payload)["id"]
                with self.stats.lock:
                    self.stats.scan_ids.append(scan_id)
                for _ in range(10):
                    time.sleep(1.0)
                    status, payload = self.request("GET /api/v1/scans/{id}/", "GET", f"/api/v1/scans/{scan_id}/")
                    if status != 200 or json.loads(payload)["status"] in {"done", "failed"}:
                        break
            self.request("GET /api/v1/scans/", "GET", "/api/v1/scans/")
            time.sleep(random.uniform(1.0, 3.0))  # noqa: S311 - think time, not security
        self.connection.close()


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _report(stats: Stats, elapsed: float) -> int:
    total = sum(len(values) for values in stats.latencies.values())
    errors = sum(stats.errors.values())
    print(
        f"\n{total} requests in {elapsed:.1f} s: {total / elapsed:.1f} req/s, errors {errors} ({errors / max(total, 1):.2%})"
    )
    print(f"{'endpoint':<28} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>6}")
    for endpoint in sorted(stats.latencies):
        ordered = sorted(stats.latencies[endpoint])
        print(
            f"{endpoint:<28} {len(ordered):>6} {_percentile(ordered, 0.50) * 1000:>8.1f} "
            f"{_percentile(ordered, 0.95) * 1000:>8.1f} {_percentile(ordered, 0.99) * 1000:>8.1f} "
            f"{statistics.fmean(ordered) * 1000:>8.1f} {stats.errors[endpoint]:>6}"
        )
    for endpoint, statuses in sorted(stats.error_statuses.items()):
        print(f"errors of {endpoint} by HTTP status (0: no response): {dict(sorted(statuses.items()))}")
    return errors


def _bench_tokens(count: int) -> list[str]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    tokens = []
    for number in range(count):
        user, created = get_user_model().objects.get_or_create(username=f"bench-user-{number}")
        if created:
            user.set_unusable_password()
            user.save()
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    return tokens


def _wait_until_finished(scan_ids: list[str], timeout_s: float) -> int:
    from scans.models import Scan

    deadline = time.monotonic() + timeout_s
    unfinished = len(scan_ids)
    while time.monotonic() < deadline:
        unfinished = Scan.objects.filter(pk__in=scan_ids).exclude(status__in=Scan.TERMINAL_STATUSES).count()
        if unfinished == 0:
            break
        time.sleep(1.0)
    statuses = Scan.objects.filter(pk__in=scan_ids).values_list("status", flat=True)
    counts = {status: list(statuses).count(status) for status in set(statuses)}
    print(f"scans of this run: {len(scan_ids)}; by status after waiting: {counts}")
    return unfinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1, help="RQ workers to start")
    parser.add_argument(
        "--ramp", type=float, default=5.0, help="seconds over which the users start, evenly (locust's spawn rate)"
    )
    parser.add_argument(
        "--tf-threads", type=int, default=1, help="TensorFlow threads per RQ worker (the web shares these cores)"
    )
    parser.add_argument("--addr", default="127.0.0.1:8765")
    parser.add_argument("--server", choices=["runserver", "gunicorn"], default="runserver", help="the web server")
    parser.add_argument("--web-processes", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=8, help="threads per gunicorn worker process")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for scans to finish")
    arguments = parser.parse_args(argv)
    host, port = arguments.addr.rsplit(":", 1)
    from bench.common import print_header

    print_header("HTTP load: uploads, polls and history views by concurrent users over loopback")

    environment = {
        **os.environ,
        "UNMASK_UPLOAD_RATE_LIMIT": "0",
        "UNMASK_UPLOAD_DAILY_QUOTA": "0",
        "UNMASK_TF_THREADS": str(arguments.tf_threads),
    }
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The web server runs with DEBUG off, as in production, where it refuses the development key: a fresh one.
    environment.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    logs = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the child processes
    processes = [
        subprocess.Popen(  # noqa: S603 - our own manage.py or gunicorn
            _web_command(arguments), cwd=BASE_DIR, env=environment, stdout=logs, stderr=logs
        )
    ]
    processes += [
        subprocess.Popen(  # noqa: S603 - our own manage.py
            [*manage, "rqworker", "scans", "--worker-class", "scans.worker.ScanWorker"],
            cwd=BASE_DIR,
            env=environment,
            stdout=logs,
            stderr=logs,
        )
        for _ in range(arguments.workers)
    ]
    try:
        tokens = _bench_tokens(arguments.users)
        photo = _photo_png()
        _wait_for_server(host, int(port))
        stats = Stats()
        started = time.monotonic()
        users = [
            User(
                host=host,
                port=int(port),
                token=token,
                stats=stats,
                start_at=started + arguments.ramp * number / max(1, len(tokens)),
                stop_at=started + arguments.duration,
                photo=photo,
            )
            for number, token in enumerate(tokens)
        ]
        for user in users:
            user.start()
        for user in users:
            user.join()
        print(
            f"web server: {_server_description(arguments)}; RQ workers: {arguments.workers} "
            f"({arguments.tf_threads} TensorFlow threads each); users: {arguments.users}, started over {arguments.ramp:g} s"
        )
        errors = _report(stats, time.monotonic() - started)
        unfinished = _wait_until_finished(stats.scan_ids, arguments.drain_timeout)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    print("OK: no errors and every scan finished" if errors == 0 and unfinished == 0 else "NOT OK")
    return 0 if errors == 0 and unfinished == 0 else 1


def _web_command(arguments: argparse.Namespace) -> list[str]:
    if arguments.server == "gunicorn":
        gunicorn = Path(sys.executable).with_name("gunicorn")
        return [
            str(gunicorn),
            "deepfake_site.wsgi:application",
            "--bind",
            arguments.addr,
            "--workers",
            str(arguments.web_processes),
            "--worker-class",
            "gthread",
            "--threads",
            str(arguments.web_threads),
        ]
    return [sys.executable, str(BASE_DIR / "manage.py"), "runserver", arguments.addr, "--noreload"]


def _server_description(arguments: argparse.Namespace) -> str:
    if arguments.server == "gunicorn":
        return f"gunicorn, {arguments.web_processes} processes x {arguments.web_threads} threads (gthread)"
    return "manage.py runserver (threaded)"


def _wait_for_server(host: str, port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection(host, port, timeout=2)
            connection.request("GET", "/api/v1/health/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the web server did not come up on {host}:{port}")


if __name__ == "__main__":
    raise SystemExit(main())
