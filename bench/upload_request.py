"""What one upload request costs, without concurrency (a benchmark, not a test).

    .venv/bin/python bench/upload_request.py [--file PATH] [--requests 60] [--warmup 5] [--profile]

Sends `POST /api/v1/scans/` through Django's test client (the whole middleware stack, token authentication,
content checks, storage, the rate limit and quota counted in Redis (limits set too high to trip), the
enqueue) one request at a time against
DATABASE_URL and REDIS_URL, and prints p50 / p95 / mean latency. `--profile` adds a cProfile listing of the
requests, cumulative time first. Without `--file` it uploads the 320x240 PNG of bench/load.py. Run
`manage.py migrate` and `register_shipped_models` on that database first. Afterwards it deletes the scans it
created and removes their jobs from the queue, so no worker ever analyses them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.load import _multipart, _percentile, _photo_png  # noqa: E402 - after the path is set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, help="the file to upload (default: a 320x240 PNG)")
    parser.add_argument("--requests", type=int, default=60, help="measured requests")
    parser.add_argument("--warmup", type=int, default=5, help="requests before measuring")
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing of the measured requests")
    arguments = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
    # The rate limit and quota stay on, so their Redis counters are part of the cost, but too high to trip.
    os.environ["UNMASK_UPLOAD_RATE_LIMIT"] = os.environ["UNMASK_UPLOAD_DAILY_QUOTA"] = "1000000000"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from scans.models import Scan
    from scans.queues import scan_queue
    from scans.services import scan_delete

    user, _created = get_user_model().objects.get_or_create(username="bench-upload-user")
    token = Token.objects.get_or_create(user=user)[0].key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    content = arguments.file.read_bytes() if arguments.file else _photo_png()
    name = arguments.file.name if arguments.file else "bench.png"
    started_at = time.time()

    def upload() -> float:
        body, content_type = _multipart(content, name)
        started = time.perf_counter()
        response = client.post("/api/v1/scans/", data=body, content_type=content_type)
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            raise SystemExit(f"upload answered {response.status_code}: {response.content[:300]!r}")
        return elapsed

    profiler = cProfile.Profile() if arguments.profile else None
    try:
        for _ in range(arguments.warmup):
            upload()
        if profiler:
            profiler.enable()
        latencies = sorted(upload() for _ in range(arguments.requests))
        if profiler:
            profiler.disable()
    finally:
        created = list(Scan.objects.filter(owner=user, created_at__gte=_aware(started_at)))
        queue = scan_queue()
        for scan in created:
            if scan.job_id:
                queue.remove(scan.job_id)
            scan_delete(scan=scan)

    print(
        f"{name} ({len(content):,} bytes), {arguments.requests} requests: "
        f"p50 {_percentile(latencies, 0.50) * 1000:.1f} ms, p95 {_percentile(latencies, 0.95) * 1000:.1f} ms, "
        f"mean {statistics.fmean(latencies) * 1000:.1f} ms"
    )
    if profiler:
        listing = io.StringIO()
        pstats.Stats(profiler, stream=listing).sort_stats("cumulative").print_stats(40)
        print(listing.getvalue())
    return 0


def _aware(timestamp: float) -> datetime:
    # A second of slack: the database's clock and this one may round differently.
    return datetime.fromtimestamp(timestamp - 1, tz=UTC)


if __name__ == "__main__":
    raise SystemExit(main())
