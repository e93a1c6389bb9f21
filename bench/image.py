"""Image scans: upload to verdict through the real queue and worker, per stage, against the naive baseline.

    .venv/bin/python -m bench.image [--repeats 20] [--naive-repeats 3] [--no-naive]

For the 1 MP one-face photo and the 4 MP six-face group photo (`bench.media`), each repeat creates a scan with
`scans.services.scan_create` (content checks, storage, database row, enqueue on commit), as a fresh user so
that no earlier identical scan is reused, and waits until a real `manage.py rqworker --worker-class
scans.worker.ScanWorker` process has stored the verdict. Upload to verdict is the scan's stored
`finished_at` minus the moment `scan_create` was called. The stage times come from the scan's stored timings:
decode, detect, crop, model (the analysis), evidence (Grad-CAM heatmaps, metadata hints, JPEG files), and
queue + database = the rest (the upload's checks and insert, Redis, the worker's row updates).

In the same run and on the same files, the in-process analysis of the fast pipeline and of the naive baseline
(`bench.naive`) are timed and their ratio printed.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.common import (
    BenchUsers,
    analyzer_for_active_models,
    median,
    percentile,
    print_header,
    setup_django,
    table,
    wait_done,
    workers,
)
from bench.media import ensure_media


def run(*, repeats: int = 20, naive_repeats: int = 3, warmup: int = 2) -> dict:
    """Run the image benchmark, print its tables and return its figures."""
    print_header("image scans: upload to verdict (real queue and worker), stages, naive baseline")
    setup_django()
    media = ensure_media()
    users = BenchUsers()
    figures: dict = {"files": {}}
    try:
        with workers(1) as (worker,):
            print(f"   worker ready (models loaded) {worker.ready_s:.1f} s after start")
            for label, path in media.images().items():
                for _ in range(warmup):
                    wait_done([users.upload(path).pk])
                totals, stages = [], []
                for _ in range(repeats):
                    requested = time.time()
                    scan = users.upload(path)
                    (scan,) = wait_done([scan.pk])
                    if scan.status != "done":
                        raise RuntimeError(f"scan of {path.name} failed: {scan.error_message}")
                    end_to_end = scan.finished_at.timestamp() - requested
                    timings = scan.timings
                    analysis = timings.get("total_s", 0.0)
                    evidence = timings.get("evidence_s", 0.0)
                    totals.append(end_to_end)
                    stages.append(
                        {
                            "decode_s": timings.get("decode_s", 0.0),
                            "detect_s": timings.get("detect_s", 0.0),
                            "crop_s": timings.get("crop_s", 0.0),
                            "model_s": timings.get("model_s", 0.0),
                            "evidence_s": evidence,
                            "queue_db_s": max(0.0, end_to_end - analysis - evidence),
                        }
                    )
                figures["files"][label] = {
                    "path": str(path),
                    "faces": len(scan.faces),
                    "verdict": scan.verdict,
                    "p50_s": median(totals),
                    "p95_s": percentile(totals, 0.95),
                    "runs": len(totals),
                    "stages_median_s": {key: median(stage[key] for stage in stages) for key in stages[0]},
                }
            figures["worker_analyzer_loads"] = worker.analyzer_loads()
    finally:
        users.clean_up()

    from bench.naive import NaivePipeline

    analyzer, _load_s = analyzer_for_active_models()
    naive = NaivePipeline(analyzer) if naive_repeats > 0 else None
    for label, path in media.images().items():
        analyzer.analyze_image(path)
        fast = [analyzer.analyze_image(path).timings.total_s for _ in range(max(3, naive_repeats))]
        entry = figures["files"][label]
        entry["fast_analysis_s"] = median(fast)
        if naive is not None:
            naive.analyze_image(path)  # the first call traces Keras' predict function
            runs = [naive.analyze_image(path) for _ in range(naive_repeats)]
            entry["naive_analysis_s"] = median(run["timings"]["total_s"] for run in runs)
            entry["naive_verdict"] = runs[-1]["verdict"]
            entry["naive_faces"] = runs[-1]["faces"]
            entry["speedup"] = entry["naive_analysis_s"] / entry["fast_analysis_s"]
    _print(figures, repeats)
    return figures


def _print(figures: dict, repeats: int) -> None:
    rows = []
    for label, entry in figures["files"].items():
        stages = entry["stages_median_s"]
        rows.append(
            [
                label,
                entry["faces"],
                entry["p50_s"],
                entry["p95_s"],
                stages["decode_s"],
                stages["detect_s"],
                stages["crop_s"],
                stages["model_s"],
                stages["evidence_s"],
                stages["queue_db_s"],
            ]
        )
    print(f"\nUpload to verdict through the queue and one worker, {repeats} runs per file (seconds; stages: medians)")
    print(
        table(
            ["file", "faces", "p50", "p95", "decode", "detect", "crops", "model", "heatmaps+evidence", "queue+db"],
            rows,
        )
    )
    print(f"(the worker loaded its models {figures['worker_analyzer_loads']} time(s) for all these scans)")
    rows = [
        [
            label,
            entry["fast_analysis_s"],
            entry.get("naive_analysis_s"),
            entry.get("speedup"),
            f"{entry['verdict']} / {entry.get('naive_verdict', '-')}",
        ]
        for label, entry in figures["files"].items()
    ]
    print("\nAnalysis in process, fast pipeline vs the naive baseline (bench/naive.py), same files, same run")
    print(table(["file", "fast (s)", "naive (s)", "naive / fast", "verdict fast / naive"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="scans per file through the worker (default 20)")
    parser.add_argument("--naive-repeats", type=int, default=3, help="naive analyses per file (default 3)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    options = parser.parse_args(argv)
    run(repeats=options.repeats, naive_repeats=0 if options.no_naive else options.naive_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
