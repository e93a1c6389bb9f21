"""`make run`'s launcher keeps the platform up: a child that dies is restarted with back-off after what it left in its
process group is stopped, the others carry on, and stopping the launcher leaves no process behind.

The first tests drive `Supervisor` with small real processes; the last runs the real launcher (web, scan worker
with its RQ scheduler, webhook pool, reconciler) and SIGKILLs its scan worker.
"""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from deepfake_site.launcher import Supervisor
from scans.selectors import platform_health
from scans.tests.processes import ProcessStarter, free_port, pid_exists, wait_for

# A child that starts a grandchild in its group (as a worker starts its scheduler), records both pids, and waits.
_PARENT_WITH_GRANDCHILD = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "a") as record:
    record.write(f"{__import__('os').getpid()} {grandchild.pid}\\n")
time.sleep(600)
"""


def _recorded_pairs(record: Path) -> list[tuple[int, int]]:
    if not record.exists():
        return []
    return [tuple(int(pid) for pid in line.split()) for line in record.read_text().splitlines() if line.strip()]


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[Supervisor, Path]]:
    record = tmp_path / "pids.txt"
    supervisor = Supervisor(
        {
            "parent": [sys.executable, "-c", _PARENT_WITH_GRANDCHILD, str(record)],
            "bystander": [sys.executable, "-c", "import time; time.sleep(600)"],
        },
        env=dict(os.environ),
        min_backoff_s=0.5,
        max_backoff_s=4.0,
        stable_after_s=60.0,
    )
    supervisor.start_all()
    yield supervisor, record
    supervisor.stop_all()


def _poll_until(supervisor: Supervisor, condition, *, timeout_s: float, what: str) -> float:
    started = time.monotonic()

    def polled() -> bool:
        supervisor.poll_once()
        return condition()

    wait_for(polled, timeout_s=timeout_s, what=what)
    return time.monotonic() - started


def test_a_killed_child_is_restarted_with_growing_back_off_and_its_group_is_stopped(supervised):
    supervisor, record = supervised
    parent, bystander = supervisor.children
    wait_for(lambda: len(_recorded_pairs(record)) == 1, timeout_s=20, what="the child to start its grandchild")
    ((first_pid, first_grandchild),) = _recorded_pairs(record)
    bystander_pid = bystander.process.pid

    os.kill(first_pid, signal.SIGKILL)
    first_wait = _poll_until(supervisor, lambda: len(_recorded_pairs(record)) == 2, timeout_s=20, what="a restart")
    second_pid, _second_grandchild = _recorded_pairs(record)[1]
    os.kill(second_pid, signal.SIGKILL)
    second_wait = _poll_until(supervisor, lambda: len(_recorded_pairs(record)) == 3, timeout_s=20, what="a restart")

    # The grandchild it left behind was stopped with it: no orphan.
    assert not pid_exists(first_grandchild)
    assert second_pid != first_pid
    # Back-off: 0.5 s after the first crash, twice that after the next one in a row.
    assert parent.backoffs_s == [0.5, 1.0]
    assert first_wait >= 0.5 and second_wait >= 1.0
    # The other child was never touched.
    assert bystander.process.pid == bystander_pid and bystander.process.poll() is None


def test_stopping_the_supervisor_stops_every_process_it_started_and_theirs(supervised):
    supervisor, record = supervised
    wait_for(lambda: len(_recorded_pairs(record)) == 1, timeout_s=20, what="the child to start its grandchild")
    ((child_pid, grandchild_pid),) = _recorded_pairs(record)
    bystander_pid = supervisor.children[1].process.pid

    supervisor.stop_all()

    assert not any(pid_exists(pid) for pid in (child_pid, grandchild_pid, bystander_pid))


# --- The real launcher ------------------------------------------------------------------------------------------


def _processes_of_this_test(var_dir: Path) -> list[psutil.Process]:
    """Every process on the machine started for this test's launcher (they carry its UNMASK_VAR_DIR)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("UNMASK_VAR_DIR") == str(var_dir) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _child_running(launcher: psutil.Process, command: str) -> psutil.Process | None:
    for child in launcher.children():
        try:
            if command in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.fixture
def launcher_var_dir(tmp_path: Path) -> Iterator[Path]:
    """The launcher's UNMASK_VAR_DIR; whatever carries it is killed at the end, whatever the test's outcome."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    yield var_dir
    for process in _processes_of_this_test(var_dir):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue


@pytest.mark.django_db(transaction=True)
def test_the_launcher_restarts_a_killed_scan_worker_without_orphans_and_leaves_nothing_when_stopped(
    redis_conn, start_process: ProcessStarter, launcher_var_dir, tmp_path
):
    port = free_port()
    # Started with SIGINT ignored, as a background job of a script starts it: Ctrl-C must still stop it.
    launcher = start_process(
        "launcher",
        ["bash", "-c", "trap '' INT; exec \"$@\"", "bash"]
        + [sys.executable, "-m", "deepfake_site.launcher", "--addr", f"127.0.0.1:{port}"],
        UNMASK_VAR_DIR=str(launcher_var_dir),
        UNMASK_WEBHOOK_WORKERS="1",
        UNMASK_WORKER_HEARTBEAT_TTL="6",
        UNMASK_WORKER_HEARTBEAT_INTERVAL="1",
    )
    tree = psutil.Process(launcher.pid)

    def scan_worker_with_scheduler() -> psutil.Process | None:
        worker = _child_running(tree, "scan_worker")
        return worker if worker is not None and worker.children() and platform_health()["workers"] == 1 else None

    wait_for(
        lambda: scan_worker_with_scheduler() is not None,
        timeout_s=300,
        what="the launcher's scan worker and its RQ scheduler",
        logs=start_process.logs,
    )
    worker = scan_worker_with_scheduler()
    (scheduler,) = worker.children()
    web, reconciler = _child_running(tree, "runserver"), _child_running(tree, "reconcile_scans")
    seen = {process.pid for process in _processes_of_this_test(launcher_var_dir)}

    os.kill(worker.pid, signal.SIGKILL)

    wait_for(lambda: not pid_exists(scheduler.pid), timeout_s=15, what="the dead worker's scheduler to be stopped")
    wait_for(
        lambda: (restarted := scan_worker_with_scheduler()) is not None and restarted.pid != worker.pid,
        timeout_s=240,
        what="the launcher to start a new scan worker",
        logs=start_process.logs,
    )
    launcher_log = (start_process.logs / "launcher.log").read_text()
    assert web.is_running(), f"the web server must carry on; launcher log:\n{launcher_log[-4000:]}"
    assert reconciler.is_running(), f"the reconciler must carry on; launcher log:\n{launcher_log[-4000:]}"
    assert "web exited" not in launcher_log, "the web server was restarted: it must start once and stay up"
    health = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    health.request("GET", "/api/v1/health/")
    assert health.getresponse().status == 200
    health.close()
    assert "worker exited with code -9; restarting it in 1 s" in (start_process.logs / "launcher.log").read_text()
    seen |= {process.pid for process in _processes_of_this_test(launcher_var_dir)}

    # Ctrl-C in the terminal reaches the launcher alone (its children have process groups of their own).
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=60) == 0

    assert _processes_of_this_test(launcher_var_dir) == []
    assert not any(pid_exists(pid) for pid in seen)


def test_make_run_is_not_in_debug_mode_unless_asked_and_still_serves_static_files():
    from deepfake_site.launcher import run_environment, web_command

    quiet = run_environment({})
    asked = run_environment({"UNMASK_DEBUG": "1"})

    assert quiet["DJANGO_DEBUG"] == "0" and asked["DJANGO_DEBUG"] == "1"
    assert run_environment({"DJANGO_DEBUG": "1"})["DJANGO_DEBUG"] == "1"
    assert "--insecure" in web_command("127.0.0.1:8000", quiet)
    assert "--insecure" not in web_command("127.0.0.1:8000", asked)


def test_make_run_signs_with_a_random_key_of_its_own_that_survives_restarts(tmp_path):
    from deepfake_site.checks import secret_key_problem
    from deepfake_site.launcher import local_secret_key

    first = local_secret_key(tmp_path)

    # The web server refuses the settings' development key with debug mode off; this one it accepts.
    assert secret_key_problem(first) == "" and len(first) >= 50
    assert local_secret_key(tmp_path) == first, "a new key on each start would sign everyone out"
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0, "only its owner may read the key"
    another_install = tmp_path / "another-install"
    another_install.mkdir()
    assert local_secret_key(another_install) != first
