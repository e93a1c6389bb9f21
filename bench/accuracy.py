"""Accuracy beside speed: the fast pipeline (`manage.py evaluate_model`) and the naive baseline on the same files.

    .venv/bin/python -m bench.accuracy [--per-class 200] [--naive-per-class 100] [--no-naive-videos]

Images: the first `--per-class` real and fake photos of images/stylegan-celeba/val (sorted by name; 0 = all
500 + 500), linked into var/bench/ and scored by `manage.py evaluate_model --kind image` with the active
version: exactly what a scan computes. The naive baseline (`bench.naive`) scores the first `--naive-per-class`
of them, and the fast pipeline's figures on that same smaller subset are printed beside it.
Videos: the eight FF++ videos, `evaluate_model --kind video` and the naive baseline.
ROC-AUC, accuracy (at the version's threshold), the uncertain fraction and files with no face are printed, with
the seconds each took.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import BENCH_DIR, analyzer_for_active_models, print_header, setup_django, table
from bench.media import VAL, data_dir

if TYPE_CHECKING:
    from bench.naive import NaivePipeline
    from ml.result import Decision

FFPP = Path("videos") / "ffpp"


def _subset(per_class: int) -> Path:
    """var/bench/val-<n>/{real,fake}: links to the first `per_class` photos of each class (all if 0)."""
    source = data_dir() / VAL
    target = BENCH_DIR / f"val-{per_class or 'all'}"
    if target.exists():
        shutil.rmtree(target)
    for label in ("real", "fake"):
        (target / label).mkdir(parents=True)
        files = sorted(path for path in (source / label).iterdir() if path.is_file())
        for path in files[:per_class] if per_class else files:
            (target / label / path.name).symlink_to(path)
    return target


def _evaluate(kind: str, folder: Path) -> dict:
    from django.core.management import call_command

    output = io.StringIO()
    started = time.perf_counter()
    call_command("evaluate_model", "--kind", kind, "--data", str(folder), "--json", stdout=output)
    summary = json.loads(output.getvalue())
    summary["wall_s"] = time.perf_counter() - started
    return summary


def _naive(kind: str, files: list[tuple[Path, int]], naive: NaivePipeline, decision: Decision) -> dict:
    from ml.errors import MediaError
    from ml.metrics import binary_report

    labels, probabilities, no_face, uncertain = [], [], 0, 0
    started = time.perf_counter()
    for path, label in files:
        try:
            result = naive.analyze_image(path) if kind == "image" else naive.analyze_video(path)
        except MediaError:
            no_face += 1
            continue
        if result["fake_probability"] is None:
            no_face += 1
            continue
        labels.append(label)
        probabilities.append(result["fake_probability"])
        uncertain += result["verdict"] == "uncertain"
    report = binary_report(labels, probabilities, decision.threshold) if labels else {"n": 0}
    return {
        "n": report["n"],
        "auc": report.get("auc"),
        "accuracy": report.get("accuracy"),
        "uncertain_fraction": uncertain / len(labels) if labels else None,
        "n_errors": no_face,
        "wall_s": time.perf_counter() - started,
    }


def _fast_on(files: set[str], summary: dict, decision: Decision) -> dict:
    """The fast pipeline's figures restricted to `files` (relative paths), from evaluate_model's per-file list."""
    from ml.metrics import binary_report

    scored = [entry for entry in summary["files"] if entry["path"] in files and entry["error"] is None]
    labels = [1 if entry["label"] == "fake" else 0 for entry in scored]
    report = binary_report(labels, [entry["fake_probability"] for entry in scored], decision.threshold)
    return {
        "n": report["n"],
        "auc": report.get("auc"),
        "accuracy": report.get("accuracy"),
        "uncertain_fraction": sum(entry["verdict"] == "uncertain" for entry in scored) / len(scored),
        "n_errors": sum(1 for entry in summary["files"] if entry["path"] in files and entry["error"] is not None),
        "wall_s": None,
    }


def run(*, per_class: int = 200, naive_per_class: int = 100, naive_videos: bool = True) -> dict:
    """Run the accuracy benchmark, print its table and return its figures."""
    print_header("accuracy beside speed: fast pipeline (evaluate_model) and the naive baseline")
    setup_django()
    from bench.naive import NaivePipeline
    from ml.datasets import IMAGE_SUFFIXES, VIDEO_SUFFIXES, labelled_files

    figures: dict = {}
    images = _subset(per_class)
    figures["images_fast"] = _evaluate("image", images)
    analyzer, _load_s = analyzer_for_active_models()
    naive = NaivePipeline(analyzer)
    if naive_per_class:
        naive_images = _subset(naive_per_class) if naive_per_class != per_class else images
        files = labelled_files(naive_images, IMAGE_SUFFIXES)
        relative = {str(path.relative_to(naive_images)) for path, _label in files}
        figures["images_fast_subset"] = _fast_on(relative, figures["images_fast"], analyzer.image_decision)
        figures["images_naive"] = _naive("image", files, naive, analyzer.image_decision)
    videos = data_dir() / FFPP
    figures["videos_fast"] = _evaluate("video", videos)
    if naive_videos:
        files = labelled_files(videos, VIDEO_SUFFIXES)
        figures["videos_naive"] = _naive("video", files, naive, analyzer.video_decision)
    _print(figures, per_class, naive_per_class)
    return figures


def _row(label: str, entry: dict) -> list[object]:
    return [
        label,
        entry["n"],
        entry.get("n_errors"),
        entry.get("auc"),
        entry.get("accuracy"),
        entry.get("uncertain_fraction"),
        entry.get("wall_s") if entry.get("wall_s") is not None else entry.get("seconds"),
    ]


def _print(figures: dict, per_class: int, naive_per_class: int) -> None:
    every = "all" if not per_class else f"first {per_class}"
    rows = [_row(f"images, fast, {every} per class", figures["images_fast"])]
    if "images_naive" in figures:
        rows.append(_row(f"images, fast, first {naive_per_class} per class", figures["images_fast_subset"]))
        rows.append(_row(f"images, NAIVE, first {naive_per_class} per class", figures["images_naive"]))
    rows.append(_row("FF++ videos (8), fast", figures["videos_fast"]))
    if "videos_naive" in figures:
        rows.append(_row("FF++ videos (8), NAIVE", figures["videos_naive"]))
    print("\nAccuracy at the active versions' thresholds (images/stylegan-celeba/val; videos/ffpp)")
    print(table(["pipeline and data", "scored", "no face", "ROC-AUC", "accuracy", "uncertain", "seconds"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=200, help="val photos per class, 0 = all 500 (default 200)")
    parser.add_argument(
        "--naive-per-class", type=int, default=100, help="photos per class for the naive baseline, 0 = none"
    )
    parser.add_argument("--no-naive-videos", action="store_true", help="skip the naive baseline on the videos")
    options = parser.parse_args(argv)
    run(per_class=options.per_class, naive_per_class=options.naive_per_class, naive_videos=not options.no_naive_videos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
