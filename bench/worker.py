"""Workers: resident memory with both models loaded, model load time, scans per minute with one and two.

    .venv/bin/python -m bench.worker [--scans 30] [--threads 0]

Starts real `manage.py rqworker --worker-class scans.worker.ScanWorker` processes on the bench queue.
A ScanWorker loads the active image and video models before it registers, so the time from process start to
registration is its start-up time, models included; the model load alone (building the Analyzer: MTCNN, both
Keras models and the compiled graphs' first trace) is timed in this process. Memory is the worker's VmRSS
(now) and VmHWM (peak) from /proc, read after it has loaded both models and again after it has analysed
`--scans` photos and one video. Throughput: `--scans` uploads of the 1 MP photo are queued at once and timed
until the last verdict, with one worker, then with two (by default each worker's UNMASK_TF_THREADS is its
share of the cores; `--threads` sets it).
Each worker's log is checked to have loaded its models exactly once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench.common import (
    BenchUsers,
    analyzer_for_active_models,
    memory_mb,
    print_header,
    setup_django,
    table,
    wait_done,
    workers,
)
from bench.media import ensure_media


def run(*, scans: int = 30, threads: int | None = None) -> dict:
    """Run the worker benchmark, print its table and return its figures."""
    print_header("workers: memory, model load time, scans per minute")
    setup_django()
    media = ensure_media()
    _analyzer, load_s = analyzer_for_active_models()
    del _analyzer
    figures: dict = {"model_load_s": load_s, "throughput": {}}
    users = BenchUsers()
    try:
        for count in (1, 2):
            # By default each worker gets its share of the cores: two workers that each size TensorFlow's
            # thread pools for the whole machine fight over it (measured: fewer scans/min than one worker).
            worker_threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // count)
            env = {"UNMASK_TF_THREADS": str(worker_threads)}
            with workers(count, env=env) as started:
                if count == 1:
                    (worker,) = started
                    figures["start_to_ready_s"] = worker.ready_s
                    figures["memory_loaded_mb"] = memory_mb(worker.pid)
                # Warm-up: one photo per worker, not timed.
                wait_done([users.upload(media.photo_1mp).pk for _ in range(count)])
                began = time.perf_counter()
                rows = wait_done([users.upload(media.photo_1mp).pk for _ in range(scans)], timeout_s=1800)
                elapsed = time.perf_counter() - began
                failed = [row for row in rows if row.status != "done"]
                if failed:
                    raise RuntimeError(f"{len(failed)} scans failed: {failed[0].error_message}")
                figures["throughput"][count] = {
                    "scans": scans,
                    "seconds": elapsed,
                    "per_minute": 60 * scans / elapsed,
                    "threads": worker_threads,
                }
                if count == 1:
                    wait_done([users.upload(media.clip_1080p).pk], timeout_s=600)
                    figures["memory_after_scans_mb"] = memory_mb(worker.pid)
                figures.setdefault("analyzer_loads", []).extend(w.analyzer_loads() for w in started)
    finally:
        users.clean_up()
    _print(figures)
    return figures


def _print(figures: dict) -> None:
    loaded, after = figures["memory_loaded_mb"], figures["memory_after_scans_mb"]
    rows = [
        ["model load (Analyzer: MTCNN + image + video model, graphs traced)", f"{figures['model_load_s']:.1f} s"],
        ["worker start to ready (process, Django, models)", f"{figures['start_to_ready_s']:.1f} s"],
        ["worker RSS, both models loaded", f"{loaded['VmRSS']:.0f} MB"],
        ["worker RSS / peak after the scans and a 1080p video", f"{after['VmRSS']:.0f} MB / {after['VmHWM']:.0f} MB"],
        ["models loaded per worker process", ", ".join(str(count) for count in figures["analyzer_loads"])],
    ]
    for count, entry in figures["throughput"].items():
        rows.append(
            [
                f"1 MP photo scans per minute, {count} worker(s) (UNMASK_TF_THREADS={entry['threads']} each)",
                f"{entry['per_minute']:.0f} ({entry['scans']} scans in {entry['seconds']:.1f} s)",
            ]
        )
    print()
    print(table(["worker", "figure"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=30, help="photos queued per throughput run (default 30)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="UNMASK_TF_THREADS of every worker (default: the core count divided by the number of workers)",
    )
    options = parser.parse_args(argv)
    run(scans=options.scans, threads=options.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
