"""Video scans: seconds per video and per stage, frames analysed, against the naive baseline.

    .venv/bin/python -m bench.video [--repeats 3] [--naive-repeats 1] [--no-naive] [--no-worker]

For the 10 s 1080p clip and the 30 s 720p clip (`bench.media`): the fast pipeline in process (what a worker
runs: `Analyzer.analyze_video`), per stage (decode = time spent waiting for the decoding thread, detect, crops,
model), its frames analysed and how many of them needed a full-frame detection; the naive baseline
(`bench.naive`: the `mtcnn` package on every sampled frame at full resolution, `model.predict` per crop) on the
same files in the same run, and the ratio; and each video once through the real queue and worker, upload to
verdict (which adds the evidence: Grad-CAM and key-frame thumbnails).
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.common import (
    BenchUsers,
    analyzer_for_active_models,
    median,
    print_header,
    setup_django,
    table,
    wait_done,
    workers,
)
from bench.media import ensure_media


def run(*, repeats: int = 3, naive_repeats: int = 1, through_worker: bool = True) -> dict:
    """Run the video benchmark, print its tables and return its figures."""
    print_header("video scans: seconds per video and per stage, naive baseline")
    setup_django()
    media = ensure_media()
    analyzer, _load_s = analyzer_for_active_models()
    figures: dict = {"files": {}}
    for label, path in media.videos().items():
        analyzer.analyze_video(path)  # warm the file cache, as an upload just written would be
        runs = [analyzer.analyze_video(path) for _ in range(repeats)]
        last = runs[-1]
        figures["files"][label] = {
            "path": str(path),
            "frames_analyzed": last.media.frames_analyzed,
            "full_detections": last.media.full_detections,
            "people": len(last.faces),
            "verdict": last.verdict,
            "fake_probability": last.fake_probability,
            "total_s": median(run.timings.total_s for run in runs),
            "stages_median_s": {
                key: median(getattr(run.timings, key) for run in runs)
                for key in ("decode_s", "detect_s", "crop_s", "model_s")
            },
        }
    if naive_repeats > 0:
        from bench.naive import NaivePipeline

        naive = NaivePipeline(analyzer)
        for label, path in media.videos().items():
            runs = [naive.analyze_video(path) for _ in range(naive_repeats)]
            entry = figures["files"][label]
            entry["naive_total_s"] = median(run["timings"]["total_s"] for run in runs)
            entry["naive_stages_s"] = {
                key: median(run["timings"][key] for run in runs) for key in ("decode_s", "detect_s", "model_s")
            }
            entry["naive_verdict"] = runs[-1]["verdict"]
            entry["naive_fake_probability"] = runs[-1]["fake_probability"]
            entry["speedup"] = entry["naive_total_s"] / entry["total_s"]
    if through_worker:
        users = BenchUsers()
        try:
            with workers(1):
                for label, path in media.videos().items():
                    requested = time.time()
                    scan = users.upload(path)
                    (scan,) = wait_done([scan.pk])
                    if scan.status != "done":
                        raise RuntimeError(f"scan of {path.name} failed: {scan.error_message}")
                    entry = figures["files"][label]
                    entry["end_to_end_s"] = scan.finished_at.timestamp() - requested
                    entry["worker_evidence_s"] = scan.timings.get("evidence_s")
        finally:
            users.clean_up()
    _print(figures, repeats, naive_repeats)
    return figures


def _print(figures: dict, repeats: int, naive_repeats: int) -> None:
    rows = []
    for label, entry in figures["files"].items():
        stages = entry["stages_median_s"]
        rows.append(
            [
                label,
                f"{entry['frames_analyzed']} ({entry['full_detections']} full)",
                entry["people"],
                entry["total_s"],
                stages["decode_s"],
                stages["detect_s"],
                stages["crop_s"],
                stages["model_s"],
                entry.get("end_to_end_s"),
                entry.get("worker_evidence_s"),
            ]
        )
    print(f"\nFast pipeline in process, median of {repeats} runs (seconds); upload to verdict through the worker once")
    print(
        table(
            [
                "video",
                "frames analysed",
                "people",
                "analysis",
                "decode wait",
                "detect",
                "crops",
                "model",
                "upload to verdict",
                "of which evidence",
            ],
            rows,
        )
    )
    if naive_repeats > 0:
        rows = [
            [
                label,
                entry["total_s"],
                entry["naive_total_s"],
                entry["naive_stages_s"]["decode_s"],
                entry["naive_stages_s"]["detect_s"],
                entry["naive_stages_s"]["model_s"],
                entry["speedup"],
                f"{entry['verdict']} {entry['fake_probability']:.3f} / "
                f"{entry['naive_verdict']} {entry['naive_fake_probability']:.3f}",
            ]
            for label, entry in figures["files"].items()
        ]
        print(f"\nFast vs the naive baseline (bench/naive.py), same files, same run ({naive_repeats} naive run(s))")
        print(
            table(
                [
                    "video",
                    "fast (s)",
                    "naive (s)",
                    "naive decode",
                    "naive detect",
                    "naive model",
                    "naive / fast",
                    "verdict, p(fake) fast / naive",
                ],
                rows,
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fast analyses per video (default 3)")
    parser.add_argument("--naive-repeats", type=int, default=1, help="naive analyses per video (default 1)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--no-worker", action="store_true", help="skip the upload-to-verdict run through a worker")
    options = parser.parse_args(argv)
    run(
        repeats=options.repeats,
        naive_repeats=0 if options.no_naive else options.naive_repeats,
        through_worker=not options.no_worker,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
