"""`make bench` / `python -m bench`: every speed, memory and accuracy benchmark, then a summary against the targets.

    .venv/bin/python -m bench [--quick] [--repeats 20] [--skip image,video,worker,accuracy] [--all]

Runs, in one process and on the same generated media (`bench.media`, under var/bench/):
  bench.image     image scans upload to verdict through the real queue and worker, per stage, vs the naive baseline
  bench.video     video scans per stage and frames analysed, vs the naive baseline, and through a worker
  bench.worker    worker memory with both models, model load time, scans per minute with one and two workers
  bench.accuracy  evaluate_model on val photos and the FF++ videos, fast and naive, beside the speed
`python -m bench.xla` (not run by default) times face detection with and without XLA (`jit_compile`).
Each is runnable alone (`python -m bench.image --help`). `--all` also runs the HTTP load test (bench/load.py,
issue 5), which is skipped by default. With the defaults the whole run takes about ten minutes on 2 CPU cores.
It needs DATABASE_URL and REDIS_URL (the Makefile points them at the test services).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import BASE_DIR, machine, machine_line, table

STEPS = ("image", "video", "worker", "accuracy")

# Targets of issue 6 on the 2-core CPU machine.
IMAGE_P50_TARGET_S = 0.5
VIDEO_1080P_TARGET_S = 4.0
VIDEO_SPEEDUP_TARGET = 5.0
WORKER_MEMORY_TARGET_MB = 1536


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20, help="image scans per file through the worker")
    parser.add_argument("--video-repeats", type=int, default=3, help="fast analyses per video")
    parser.add_argument("--naive-repeats", type=int, default=1, help="naive analyses per image and per video")
    parser.add_argument("--scans", type=int, default=30, help="photos queued per worker-throughput run")
    parser.add_argument("--per-class", type=int, default=200, help="val photos per class for accuracy (0 = all)")
    parser.add_argument("--naive-per-class", type=int, default=100, help="val photos per class, naive baseline")
    parser.add_argument("--quick", action="store_true", help="few repeats and small subsets: a smoke run")
    parser.add_argument("--skip", default="", help=f"comma-separated steps to skip: {', '.join(STEPS)}")
    parser.add_argument("--all", action="store_true", help="also run the HTTP load test (bench/load.py)")
    options = parser.parse_args(argv)
    if options.quick:
        options.repeats, options.video_repeats, options.scans = 5, 1, 10
        options.per_class, options.naive_per_class = 20, 10
    skipped = {step.strip() for step in options.skip.split(",") if step.strip()}
    unknown = skipped - set(STEPS)
    if unknown:
        parser.error(f"unknown step(s) to skip: {', '.join(sorted(unknown))}")
    original_environment = dict(os.environ)

    from bench import accuracy, image, media, video, worker

    started = time.perf_counter()
    media.ensure_media()
    results: dict = {}
    if "image" not in skipped:
        results["image"] = image.run(repeats=options.repeats, naive_repeats=max(1, options.naive_repeats))
    if "video" not in skipped:
        results["video"] = video.run(repeats=options.video_repeats, naive_repeats=options.naive_repeats)
    if "worker" not in skipped:
        results["worker"] = worker.run(scans=options.scans)
    if "accuracy" not in skipped:
        results["accuracy"] = accuracy.run(per_class=options.per_class, naive_per_class=options.naive_per_class)
    if options.all:
        print("== HTTP load test (bench/load.py, issue 5)")
        subprocess.run(  # noqa: S603 - our own script
            [sys.executable, str(BASE_DIR / "bench" / "load.py")], env=original_environment, cwd=BASE_DIR, check=False
        )
    _summary(results, time.perf_counter() - started)
    return 0


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _summary(results: dict, seconds: float) -> None:
    rows = []
    if "image" in results:
        photo = results["image"]["files"]["1 MP photo, 1 face"]
        group = results["image"]["files"]["4 MP group, 6 faces"]
        rows.append(
            [
                "1 MP photo, upload to verdict p50 / p95",
                f"{photo['p50_s']:.3f} s / {photo['p95_s']:.3f} s",
                f"p50 <= {IMAGE_P50_TARGET_S} s",
                _verdict(photo["p50_s"] <= IMAGE_P50_TARGET_S),
            ]
        )
        rows.append(
            [
                "4 MP group photo, upload to verdict p50 / p95",
                f"{group['p50_s']:.3f} s / {group['p95_s']:.3f} s",
                "-",
                "-",
            ]
        )
        for label, entry in results["image"]["files"].items():
            if "speedup" in entry:
                rows.append([f"{label}: naive / fast analysis", f"{entry['speedup']:.1f}x", "-", "-"])
    if "video" in results:
        clip = results["video"]["files"]["10 s 1080p"]
        rows.append(
            [
                "10 s 1080p video, analysis",
                f"{clip['total_s']:.2f} s ({clip['frames_analyzed']} frames)",
                f"<= {VIDEO_1080P_TARGET_S} s",
                _verdict(clip["total_s"] <= VIDEO_1080P_TARGET_S),
            ]
        )
        if "end_to_end_s" in clip:
            rows.append(
                ["10 s 1080p video, upload to verdict (with evidence)", f"{clip['end_to_end_s']:.2f} s", "-", "-"]
            )
        if "speedup" in clip:
            same = clip["verdict"] == clip["naive_verdict"]
            rows.append(
                [
                    "10 s 1080p video, naive / fast",
                    f"{clip['speedup']:.1f}x (verdict {clip['verdict']} / {clip['naive_verdict']})",
                    f">= {VIDEO_SPEEDUP_TARGET:.0f}x, same verdict",
                    _verdict(clip["speedup"] >= VIDEO_SPEEDUP_TARGET and same),
                ]
            )
        long_clip = results["video"]["files"]["30 s 720p"]
        rows.append(["30 s 720p video, analysis", f"{long_clip['total_s']:.2f} s", "-", "-"])
    if "worker" in results:
        figures = results["worker"]
        peak = figures["memory_after_scans_mb"]["VmHWM"]
        rows.append(
            [
                "worker memory, both models (RSS loaded / peak)",
                f"{figures['memory_loaded_mb']['VmRSS']:.0f} MB / {peak:.0f} MB",
                f"<= {WORKER_MEMORY_TARGET_MB} MB",
                _verdict(peak <= WORKER_MEMORY_TARGET_MB),
            ]
        )
        once = all(count == 1 for count in figures["analyzer_loads"])
        rows.append(
            [
                "model load time; loads per worker process",
                f"{figures['model_load_s']:.1f} s; {', '.join(map(str, figures['analyzer_loads']))}",
                "once per process",
                _verdict(once),
            ]
        )
        for count, entry in figures["throughput"].items():
            rows.append([f"1 MP scans per minute, {count} worker(s)", f"{entry['per_minute']:.0f}", "-", "-"])
    if "accuracy" in results:
        figures = results["accuracy"]
        fast = figures["images_fast"]
        rows.append(
            [
                "val photos, fast: ROC-AUC / accuracy",
                f"{fast['auc']:.4f} / {fast['accuracy']:.4f} (n={fast['n']})",
                "-",
                "-",
            ]
        )
        if "images_naive" in figures:
            subset, naive = figures["images_fast_subset"], figures["images_naive"]
            rows.append(
                [
                    "val subset, fast vs naive accuracy",
                    f"{subset['accuracy']:.4f} vs {naive['accuracy']:.4f} (n={subset['n']} / {naive['n']})",
                    "equal or better",
                    _verdict(subset["accuracy"] >= naive["accuracy"]),
                ]
            )
        videos = figures["videos_fast"]
        text = f"{videos['auc']:.3f} / {videos['accuracy']:.3f}"
        if "videos_naive" in figures:
            naive = figures["videos_naive"]
            text += f" (naive {naive['auc']:.3f} / {naive['accuracy']:.3f})"
        rows.append(["FF++ videos: ROC-AUC / accuracy", text, "-", "-"])
    print("\n== Summary")
    print(f"   {machine_line(machine())}; the whole run took {seconds / 60:.1f} min")
    print(table(["figure", "measured", "target", "status"], rows))


if __name__ == "__main__":
    sys.exit(main())
