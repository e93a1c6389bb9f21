"""Scoring labelled files through the scan pipeline, as `evaluate_model` and `evaluate_report` do.

Every figure a model card quotes comes from here: each file goes through `ml.pipeline.Analyzer` exactly as an
upload would (MTCNN on the original file, the version's crop rule, model, calibration and decision), so the
figures include the detector's misses and the pipeline's own resizing, not only the classifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ml.errors import MediaError
from ml.metrics import binary_report
from ml.pipeline import Analyzer
from ml.result import Analysis


def evaluate_files(
    analyzer: Analyzer,
    files: list[tuple[Path, int]],
    *,
    kind: str,
    root: Path,
    name: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The `evaluate_model` summary of `files` (path, label) scored by `analyzer`, with a row per file.

    Files the pipeline refuses, or where it finds no face, are errors: listed and counted, never scored.
    `name` names the evaluation data (the admin compares versions on the same name only).
    """
    started = time.monotonic()
    per_file = []
    for number, (path, label) in enumerate(files, start=1):
        entry = {"path": _relative(path, root), "label": "fake" if label else "real"}
        try:
            result = analyzer.analyze_image(path) if kind == "image" else analyzer.analyze_video(path)
        except MediaError as exc:
            entry.update(fake_probability=None, verdict=None, error=str(exc))
        else:
            entry.update(fake_probability=result.fake_probability, verdict=result.verdict)
            entry["faces"] = len(result.faces)
            entry["manipulation"] = _top_manipulation(result)
            entry["error"] = "no face found" if result.verdict == "no_face" else None
        per_file.append(entry)
        if progress is not None:
            progress(number, len(files))
    scored = [entry for entry in per_file if entry["error"] is None]
    labels = [1 if entry["label"] == "fake" else 0 for entry in scored]
    probabilities = [entry["fake_probability"] for entry in scored]
    decision = analyzer.video_decision if kind == "video" else analyzer.image_decision
    report = binary_report(labels, probabilities, decision.threshold) if scored else {"n": 0}
    reals = [entry for entry in scored if entry["label"] == "real"]
    return {
        "name": name,
        "n": report["n"],
        "auc": report.get("auc"),
        "accuracy": report.get("accuracy"),
        "precision": report.get("precision"),
        "recall": report.get("recall"),
        "f1": report.get("f1"),
        "log_loss": report.get("log_loss"),
        "ece": report.get("ece"),
        "false_positive_rate": round(
            sum(entry["fake_probability"] >= decision.threshold for entry in reals) / len(reals), 6
        )
        if reals
        else None,
        "n_files": len(per_file),
        "n_errors": len(per_file) - len(scored),
        "threshold": decision.threshold,
        "uncertain_band": [decision.uncertain_low, decision.uncertain_high],
        "uncertain_fraction": round(sum(entry["verdict"] == "uncertain" for entry in scored) / len(scored), 6)
        if scored
        else None,
        "confusion": report.get("confusion"),
        "model": analyzer.labels[kind],
        "kind": kind,
        "data": str(root),
        "seconds": round(time.monotonic() - started, 1),
        "files": per_file,
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _top_manipulation(analysis: Analysis) -> str | None:
    """The most suspicious face's most likely manipulation type, where the model has that head."""
    faces = [face for face in analysis.faces if face.manipulation is not None]
    if not faces:
        return None
    return max(faces, key=lambda face: face.fake_probability).manipulation.most_likely
