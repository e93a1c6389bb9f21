"""Load benchmark (not a test): concurrent users uploading, polling and browsing history over loopback.

    .venv/bin/python bench/load.py [--users 20] [--duration 120] [--workers 1]

It starts its own web server (`manage.py runserver`, threaded) and RQ worker(s) against DATABASE_URL and
REDIS_URL (run `manage.py migrate` and `register_shipped_models` on that database first), with the upload
rate limit and quota off for the run, and creates `bench-user-N` accounts with API tokens. Each simulated
user loops: upload a small photo-sized image, poll the scan every second until it finishes (or 10 polls),
view the first page of its history, then think for 1-3 s. At the end it prints requests/s, p50/p95/p99
latency per endpoint and the error rate, then waits for every scan of the run to finish and says how many
did not. Targets (issue 5): 0 errors, upload p95 <= 50 ms (the request only stores and enqueues).
The standard library only: no load-testing package is needed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


@dataclass
class Stats:
    """Latencies (seconds) and error counts per endpoint, shared by all user threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    scan_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            if not ok:
                self.errors[endpoint] += 1


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

    def __init__(self, *, host: str, port: int, token: str, stats: Stats, stop_at: float, photo: bytes) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.token = host, port, token
        self.stats, self.stop_at, self.photo = stats, stop_at, photo
        self.connection = http.client.HTTPConnection(host, port, timeout=30)

    def request(self, endpoint: str, method: str, path: str, body: bytes | None = None, content_type: str = ""):
        headers = {"Authorization": f"Token {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            payload, status = b"", 0
        self.stats.record(endpoint, time.perf_counter() - started, ok=200 <= status < 300)
        return status, payload

    def run(self) -> None:
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
    parser.add_argument("--addr", default="127.0.0.1:8765")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for scans to finish")
    arguments = parser.parse_args(argv)
    host, port = arguments.addr.rsplit(":", 1)

    environment = {**os.environ, "UNMASK_UPLOAD_RATE_LIMIT": "0", "UNMASK_UPLOAD_DAILY_QUOTA": "0"}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    logs = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the child processes
    processes = [
        subprocess.Popen(  # noqa: S603 - our own manage.py
            [*manage, "runserver", arguments.addr, "--noreload"],
            cwd=BASE_DIR,
            env=environment,
            stdout=logs,
            stderr=logs,
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
            User(host=host, port=int(port), token=token, stats=stats, stop_at=started + arguments.duration, photo=photo)
            for token in tokens
        ]
        for user in users:
            user.start()
        for user in users:
            user.join()
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
