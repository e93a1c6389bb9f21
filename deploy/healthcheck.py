"""Container health checks for docker-compose.yml: `python deploy/healthcheck.py web|worker`; exit 0 when healthy.

- web: GET /api/v1/health/ from gunicorn inside the container. It must be a request Django accepts in
  production: the Host header is the first of DJANGO_ALLOWED_HOSTS, and `X-Forwarded-Proto: https` stands in
  for the HTTPS proxy (with DJANGO_SECURE=1 a plain request would only get a redirect). Healthy unless the
  answer is not 200 (503 means the database or Redis is down; "degraded", no worker yet, still answers 200).
- worker: an RQ worker of this container (same host name) is registered in Redis. A worker registers only
  after it has loaded its models (scans.worker.ScanWorker.bootstrap), and stays registered while it runs a job.

Plain Python with no Django import, so a check costs a few milliseconds of CPU, not a Django start-up.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import urllib.parse

WEB_URL = "http://127.0.0.1:8000/api/v1/health/"
TIMEOUT_S = 5


def web_is_healthy() -> bool:
    allowed_hosts = [host.strip() for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host.strip()]
    # A leading-dot entry (".example.com") allows subdomains; the bare domain is one of them.
    host = allowed_hosts[0].lstrip(".") if allowed_hosts and allowed_hosts[0] != "*" else "localhost"
    # Plain HTTP to gunicorn on this container's loopback, nothing else: http.client speaks no other scheme (no
    # file: or ftp: as urllib would), follows no redirect and consults no proxy.
    url = urllib.parse.urlsplit(WEB_URL)
    if url.scheme != "http" or not url.hostname:
        print(f"web unhealthy: {WEB_URL} is not an http:// URL", file=sys.stderr)
        return False
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=TIMEOUT_S)
    try:
        connection.request("GET", url.path or "/", headers={"Host": host, "X-Forwarded-Proto": "https"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"web unhealthy: {exc}", file=sys.stderr)
        return False
    finally:
        connection.close()
    if status != 200:
        print(f"web unhealthy: {WEB_URL} answered HTTP {status}", file=sys.stderr)
    return status == 200


def worker_is_healthy() -> bool:
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_connect_timeout=TIMEOUT_S
    )
    hostname = socket.gethostname()
    try:
        workers = Worker.all(connection=connection)
    except redis.RedisError as exc:
        print(f"worker unhealthy: Redis unreachable: {exc}", file=sys.stderr)
        return False
    if any(worker.hostname == hostname for worker in workers):
        return True
    print(f"worker unhealthy: no RQ worker of host {hostname} is registered", file=sys.stderr)
    return False


CHECKS = {"web": web_is_healthy, "worker": worker_is_healthy}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: python deploy/healthcheck.py {'|'.join(CHECKS)}", file=sys.stderr)
        return 2
    return 0 if CHECKS[argv[0]]() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
