"""The image model card's figures: every held-out set scored through the scan pipeline, in one report.

`build_image_report` runs `training.evaluation.evaluate_files` on each row of `IMAGE_REPORT_ROWS` (each
source's test split, re-encoded copies of two of them, and tight letterboxed copies of all three), on the sources
left out of training by leave-one-source-out runs, adds the out-of-fold video-frame figures of the version's training run, and pools everything
held out to measure calibration (ECE) and the false-positive rate of every real source at the threshold.
`card_table` turns it into the Markdown the model card shows, so the card's numbers are never typed by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.calibration import LogitCalibration
from ml.metrics import binary_report, expected_calibration_error, roc_auc
from ml.pipeline import Analyzer
from ml.sources import SOURCES, dfdc_face_widths, split_files
from training.evaluation import evaluate_files
from training.model_specs import spec_from_run, spec_from_version


@dataclass(frozen=True)
class ReportRow:
    """One held-out set: a source's split, optionally re-encoded to one size and one JPEG quality (the
    file-property shortcut check) or cut tight and letterboxed (the framing check), with the ROC-AUC target the
    card holds it to (none for the framing check: the issue set none; it is there to show what framing costs)."""

    key: str
    title: str
    source: str
    split: str = "test"
    reencode: tuple[int, int] | None = None  # (side in pixels, JPEG quality)
    letterbox: bool = False
    target_auc: float | None = None

    @property
    def is_copy(self) -> bool:
        """A remade copy of a split: scored, but kept out of the pooled figures so no face counts twice."""
        return self.reencode is not None or self.letterbox


IMAGE_REPORT_ROWS = (
    ReportRow("dfdc-faces:test", "DFDC faces, source videos never trained on", "dfdc-faces", target_auc=0.90),
    ReportRow("sdfd-ffhq:test", "Stable Diffusion 2.1 vs FFHQ, held-out files", "sdfd-ffhq", target_auc=0.97),
    ReportRow(
        "sdfd-ffhq:test@224q80",
        "the same files re-encoded to 224 px, JPEG q80",
        "sdfd-ffhq",
        reencode=(224, 80),
        target_auc=0.95,
    ),
    ReportRow("stylegan-celeba:test", "StyleGAN vs CelebA, its val set", "stylegan-celeba", target_auc=0.995),
    ReportRow(
        "stylegan-celeba:test@224q80",
        "the same files re-encoded to 224 px, JPEG q80",
        "stylegan-celeba",
        reencode=(224, 80),
        target_auc=0.98,
    ),
    *(
        ReportRow(
            f"{name}:test@tight-letterbox",
            "the same files cut tight around the face and letterboxed (black bars left and right)",
            name,
            letterbox=True,
        )
        for name in ("dfdc-faces", "sdfd-ffhq", "stylegan-celeba")
    ),
)
# The letterboxed copy: the centre LETTERBOX_KEEP of the square, at LETTERBOX_SIDE px, on a canvas
# LETTERBOX_WIDTH px wide. A face filling a padded frame, as a cropped-and-padded clip or a phone video shown
# in a wide player: the detector's crop then holds less margin than the crop rule asks, and black bars.
LETTERBOX_KEEP, LETTERBOX_SIDE, LETTERBOX_WIDTH = 0.8, 224, 298
FRAMES_TARGET_AUC = 0.85
LEFT_OUT_AIM_AUC = 0.75
ECE_TARGET = 0.05
FALSE_POSITIVE_TARGET = 0.05
# DFDC's test faces by their width in the video frame they were cut from (`metadata.csv`): the crops were all
# upscaled to 224 px, so a face 60 px wide reaches the model with whatever seam the swap left blurred away.
FACE_WIDTH_BANDS = ((0, 100), (100, 200), (200, None))


def _copied(files: list[tuple[Path, int]], out_dir: Path, remake: Callable, *, quality: int) -> list[tuple[Path, int]]:
    """Each of `files` (EXIF-rotated RGB) through `remake`, saved as JPEG at `quality` under `out_dir/{real,fake}`
    (kept, so a second report reuses the copy); returns the copies with their labels."""
    from PIL import Image, ImageOps

    copies = []
    for path, label in files:
        target = out_dir / ("fake" if label else "real") / f"{path.stem}.jpg"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
            remake(image).save(target, "JPEG", quality=quality)
        copies.append((target, label))
    return copies


def _centre_square(image, keep: float = 1.0):
    side = int(min(image.size) * keep)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def reencoded_copy(files: list[tuple[Path, int]], out_dir: Path, *, size: int, quality: int) -> list[tuple[Path, int]]:
    """`files` centre-cropped square, resized to `size` and saved as JPEG at `quality` (see `_copied`)."""
    from PIL import Image

    return _copied(
        files,
        out_dir,
        lambda image: _centre_square(image).resize((size, size), Image.Resampling.LANCZOS),
        quality=quality,
    )


def letterboxed_copy(files: list[tuple[Path, int]], out_dir: Path) -> list[tuple[Path, int]]:
    """`files` cut to the centre of their square, resized, pasted on a wider black canvas and saved as JPEG q90
    (see `_copied`)."""
    from PIL import Image

    def letterbox(image):
        face = _centre_square(image, LETTERBOX_KEEP).resize((LETTERBOX_SIDE, LETTERBOX_SIDE), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (LETTERBOX_WIDTH, LETTERBOX_SIDE))
        canvas.paste(face, ((LETTERBOX_WIDTH - LETTERBOX_SIDE) // 2, 0))
        return canvas

    return _copied(files, out_dir, letterbox, quality=90)


def calibrated(settings: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The version's calibration as a function of raw logits."""
    return LogitCalibration.from_settings(settings.get("calibration")).probabilities


def out_of_fold_frames(frames_path: Path, *, settings: dict) -> dict:
    """The video frames as the cross-fitted stage-2 models scored them (each frame by a model that never saw
    its video group), calibrated as the version calibrates: overall, per video source and per video."""
    saved = np.load(frames_path, allow_pickle=False)
    labels = saved["labels"].astype(int)
    probabilities = calibrated(settings)(saved["logits"])
    threshold = float(settings.get("threshold", 0.5))
    units = saved["units"].astype(str)
    sources = np.asarray([unit.split("/", 1)[0] for unit in units])
    summary = _figures(labels, probabilities, threshold)
    summary["videos"] = len(set(units.tolist()))
    summary["groups"] = len(set(saved["groups"].astype(str).tolist()))
    summary["by_source"] = {
        name: _figures(labels[sources == name], probabilities[sources == name], threshold)
        for name in sorted(set(sources.tolist()))
    }
    summary["per_video"] = [
        {
            "video": unit,
            "label": "fake" if labels[units == unit][0] else "real",
            "fold": str(saved["folds"][units == unit][0]),
            "frames": int((units == unit).sum()),
            "mean_probability": round(float(probabilities[units == unit].mean()), 4),
            "share_over_threshold": round(float((probabilities[units == unit] >= threshold).mean()), 4),
        }
        for unit in sorted(set(units.tolist()))
    ]
    return {"labels": labels, "probabilities": probabilities, "groups": sources, "summary": summary}


def _figures(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, dtype=np.float64)
    report = binary_report(labels, probabilities, threshold)
    reals = labels == 0
    return {
        "n": report["n"],
        "auc": report["auc"],
        "accuracy": report["accuracy"],
        "ece": report["ece"],
        "false_positive_rate": round(float((probabilities[reals] >= threshold).mean()), 6) if reals.any() else None,
    }


def build_image_report(
    *,
    data_dir: Path,
    version,
    compared: list,
    frames_path: Path | None,
    left_out: list[tuple[str, Path]],
    work_dir: Path,
    progress: Callable[[str], Callable[[int, int], None]],
) -> dict:
    """Every figure of the image model card, for `version` (and `compared` versions on the same files)."""
    analyzers = {model.label: Analyzer(spec_from_version(model)) for model in [version, *compared]}
    rows = []
    for row in IMAGE_REPORT_ROWS:
        source = SOURCES[row.source]
        files = split_files(source, data_dir, row.split)
        root = source.folder(data_dir)
        if row.reencode is not None:
            size, quality = row.reencode
            root = work_dir / "reencoded" / f"{row.source}-{row.split}-{size}-q{quality}"
            files = reencoded_copy(files, root, size=size, quality=quality)
        elif row.letterbox:
            root = work_dir / "letterboxed" / f"{row.source}-{row.split}"
            files = letterboxed_copy(files, root)
        entry = {"key": row.key, "title": row.title, "target_auc": row.target_auc, "source": row.source, "versions": {}}
        for label, analyzer in analyzers.items():
            entry["versions"][label] = evaluate_files(
                analyzer, files, kind="image", root=root, name=row.key, progress=progress(f"{row.key} {label}")
            )
        entry["reencoded"] = row.is_copy
        rows.append(entry)
    for name, run in left_out:
        source = SOURCES[name]
        analyzer = Analyzer(spec_from_run(run, kind="image"))
        summary = evaluate_files(
            analyzer,
            split_files(source, data_dir, "test"),
            kind="image",
            root=source.folder(data_dir),
            name=f"{name}:test, left out",
            progress=progress(f"{name} left out"),
        )
        rows.append(
            {
                "key": f"{name}:test, left out",
                "title": f"{name} test split, by a run that never saw {name} (--leave-out)",
                "target_auc": LEFT_OUT_AIM_AUC,
                "source": name,
                "left_out": True,
                "run": str(run),
                "versions": {analyzer.labels["image"]: summary},
            }
        )
        del analyzer
    frames = out_of_fold_frames(frames_path, settings=version.settings) if frames_path is not None else None
    threshold = float(version.settings.get("threshold", 0.5))
    return {
        "version": version.label,
        "compared": [model.label for model in compared],
        "threshold": threshold,
        "uncertain_band": [version.settings.get("uncertain_low"), version.settings.get("uncertain_high")],
        "rows": rows,
        "frames": frames["summary"] if frames else None,
        "frames_file": str(frames_path) if frames_path else None,
        "pooled": _pooled(rows, frames, version.label, threshold),
        "dfdc_by_face_width": _dfdc_by_face_width(rows, data_dir, version.label, threshold),
        "manipulation": _manipulation_accuracy(rows, version.label),
    }


def _pooled(rows: list[dict], frames: dict | None, label: str, threshold: float) -> dict:
    """All held-out data of the version together (test splits as they are, out-of-fold frames): ECE, and the
    false-positive rate of each real source at the threshold."""
    labels, probabilities, groups = [], [], []
    for row in rows:
        if row.get("reencoded") or row.get("left_out"):
            continue
        for entry in row["versions"][label]["files"]:
            if entry["error"] is None:
                labels.append(1 if entry["label"] == "fake" else 0)
                probabilities.append(entry["fake_probability"])
                groups.append(row["source"])
    if frames is not None:
        labels.extend(frames["labels"].tolist())
        probabilities.extend(frames["probabilities"].tolist())
        groups.extend(frames["groups"].tolist())
    labels_array, probabilities_array, groups_array = np.asarray(labels), np.asarray(probabilities), np.asarray(groups)
    by_source = {}
    for name in sorted(set(groups)):
        members = groups_array == name
        by_source[name] = {
            "real_origin": SOURCES[name].real_origin,
            **_figures(labels_array[members], probabilities_array[members], threshold),
        }
    return {
        "n": len(labels),
        "auc": None if not labels else round(roc_auc(labels_array, probabilities_array) or 0.0, 6),
        "ece": round(expected_calibration_error(labels_array, probabilities_array), 6) if labels else None,
        "by_source": by_source,
    }


def _dfdc_by_face_width(rows: list[dict], data_dir: Path, label: str, threshold: float) -> list[dict]:
    """The `dfdc-faces:test` figures per band of the face's original width (`FACE_WIDTH_BANDS`); empty where
    the row or the metadata is missing."""
    row = next((row for row in rows if row["key"] == "dfdc-faces:test"), None)
    if row is None:
        return []
    try:
        widths = dfdc_face_widths(SOURCES["dfdc-faces"].folder(data_dir))
    except FileNotFoundError:
        return []
    scored = [entry for entry in row["versions"][label]["files"] if entry["error"] is None]
    bands = []
    for low, high in FACE_WIDTH_BANDS:
        members = [
            entry
            for entry in scored
            if entry["path"] in widths
            and widths[entry["path"]] >= low
            and (high is None or widths[entry["path"]] < high)
        ]
        labels = np.asarray([1 if entry["label"] == "fake" else 0 for entry in members])
        figures = _figures(labels, [entry["fake_probability"] for entry in members], threshold) if members else {}
        bands.append(
            {
                "band": f"{low}-{high} px" if high is not None else f">= {low} px",
                "fakes": int(labels.sum()),
                "reals": int((labels == 0).sum()),
                "auc": figures.get("auc"),
            }
        )
    return bands


def _manipulation_accuracy(rows: list[dict], label: str) -> dict:
    """Per source, the share of scored fakes whose "most like" type is the source's kind of fake."""
    figures = {}
    for row in rows:
        if row.get("reencoded") or row.get("left_out"):
            continue
        fakes = [
            entry for entry in row["versions"][label]["files"] if entry["error"] is None and entry["label"] == "fake"
        ]
        typed = [entry for entry in fakes if entry.get("manipulation")]
        if typed:
            expected = SOURCES[row["source"]].fake_type
            figures[row["source"]] = {
                "fakes": len(typed),
                "type": expected,
                "accuracy": round(sum(entry["manipulation"] == expected for entry in typed) / len(typed), 4),
            }
    return figures


def write_report(report: dict, out_dir: Path) -> None:
    """report.json (figures, with the per-file rows in files.json), report.md and plots under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_file = {
        f"{row['key']} | {label}": summary["files"]
        for row in report["rows"]
        for label, summary in row["versions"].items()
    }
    (out_dir / "files.json").write_text(json.dumps(per_file))
    slim = json.loads(json.dumps(report, default=str))
    for row in slim["rows"]:
        for summary in row["versions"].values():
            summary.pop("files", None)
    (out_dir / "report.json").write_text(json.dumps(slim, indent=2))
    (out_dir / "report.md").write_text(card_table(report) + "\n")
    _plot_rocs(report, out_dir / "roc.png")


def _met(value: float | None, target: float | None, *, at_most: bool = False) -> str:
    if value is None or target is None:
        return ""
    return "met" if (value <= target if at_most else value >= target) else "**missed**"


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def card_table(report: dict) -> str:
    """The model card's figures as Markdown: one table of held-out sets, then calibration and false positives."""
    main = report["version"]
    lines = [
        f"Measured by `manage.py evaluate_report` on {report.get('date', '?')}, {report.get('machine', '?')}, "
        f"for `{main}` (threshold {report['threshold']}, uncertain band {report['uncertain_band'][0]}-"
        f"{report['uncertain_band'][1]}).",
        "",
        "| held-out data | n scored (no face) | ROC-AUC | accuracy | false-positive rate | ECE | target | "
        + " | ".join(f"`{label}` ROC-AUC" for label in report["compared"])
        + (" |" if report["compared"] else "|"),
        "|---|---|---|---|---|---|---|" + "---|" * len(report["compared"]),
    ]
    for row in report["rows"]:
        summary = next(iter(row["versions"].values())) if row.get("left_out") else row["versions"][main]
        target = row["target_auc"]
        goal = "no target" if target is None else f"aim >= {target}" if row.get("left_out") else f">= {target}"
        others = [
            _number(row["versions"][label]["auc"]) if label in row["versions"] and not row.get("left_out") else ""
            for label in report["compared"]
        ]
        lines.append(
            f"| {row['title']} (`{row['key']}`) | {summary['n']} ({summary['n_errors']}) | "
            f"**{_number(summary['auc'])}** | {_number(summary['accuracy'])} | "
            f"{_number(summary['false_positive_rate'])} | {_number(summary['ece'])} | "
            f"{goal}{': ' + _met(summary['auc'], target) if target is not None else ''} |"
            + "".join(f" {value} |" for value in others)
        )
    frames = report.get("frames")
    if frames:
        lines.append(
            f"| frames of held-out FF++ / Celeb-DF source groups, out-of-fold ({frames['videos']} videos, "
            f"{frames['groups']} groups) | {frames['n']} (0) | **{_number(frames['auc'])}** | "
            f"{_number(frames['accuracy'])} | {_number(frames['false_positive_rate'])} | {_number(frames['ece'])} | "
            f">= {FRAMES_TARGET_AUC}: {_met(frames['auc'], FRAMES_TARGET_AUC)} |" + " |" * len(report["compared"])
        )
    pooled = report["pooled"]
    lines += [
        "",
        f"All held-out data together ({pooled['n']} faces: the test splits above as they are, and the out-of-fold "
        f"frames): ROC-AUC {_number(pooled['auc'])}, **ECE {_number(pooled['ece'])}** "
        f"(target <= {ECE_TARGET}: {_met(pooled['ece'], ECE_TARGET, at_most=True)}).",
        "",
        "| real source | real faces | false-positive rate at the threshold | target |",
        "|---|---|---|---|",
    ]
    for name, figures in pooled["by_source"].items():
        rate = figures["false_positive_rate"]
        lines.append(
            f"| {figures['real_origin']} (`{name}`) | {_real_count(report, name)} | **{_number(rate)}** | "
            f"<= {FALSE_POSITIVE_TARGET}: {_met(rate, FALSE_POSITIVE_TARGET, at_most=True)} |"
        )
    if report.get("dfdc_by_face_width"):
        lines += [
            "",
            "| `dfdc-faces:test` by the face's width in its video frame | fakes | reals | ROC-AUC |",
            "|---|---|---|---|",
        ]
        for band in report["dfdc_by_face_width"]:
            lines.append(f"| {band['band']} | {band['fakes']} | {band['reals']} | **{_number(band['auc'])}** |")
    lines += ["", *_verdict_table(report)]
    if report.get("manipulation"):
        lines += ["", '| fakes of | their kind | "most like" names it |', "|---|---|---|"]
        for name, figures in report["manipulation"].items():
            lines.append(
                f"| `{name}` ({figures['fakes']} fakes) | {figures['type']} | {_number(figures['accuracy'])} |"
            )
    return "\n".join(lines)


def _verdict_table(report: dict) -> list[str]:
    """What a reviewer is told, per held-out set and version: how many fakes and reals got each verdict."""
    lines = [
        "| held-out data | version | fakes called fake / uncertain / **real** | reals called real / uncertain / **fake** |",
        "|---|---|---|---|",
    ]
    for row in report["rows"]:
        if row.get("left_out"):
            continue
        for label in (report["version"], *report["compared"]):
            files = (row["versions"].get(label) or {}).get("files")
            if not files:
                continue
            counts = Counter((entry["label"], entry["verdict"]) for entry in files if entry["error"] is None)
            fakes = " / ".join(str(counts[("fake", verdict)]) for verdict in ("fake", "uncertain", "real"))
            reals = " / ".join(str(counts[("real", verdict)]) for verdict in ("real", "uncertain", "fake"))
            lines.append(f"| `{row['key']}` | `{label}` | {fakes} | {reals} |")
    return lines


def _real_count(report: dict, name: str) -> int | str:
    for row in report["rows"]:
        if row["source"] == name and not row.get("reencoded") and not row.get("left_out"):
            files = row["versions"][report["version"]]["files"]
            return sum(1 for entry in files if entry["label"] == "real" and entry["error"] is None)
    frames = report.get("frames") or {}
    return frames.get("by_source", {}).get(name, {}).get("n", "")


def _plot_rocs(report: dict, path: Path) -> None:
    """One ROC plot with a curve per held-out set of the main version (and left-out runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.metrics import roc_curve

    figure, axes = plt.subplots(figsize=(6, 5), dpi=100)
    for row in report["rows"]:
        summary = next(iter(row["versions"].values())) if row.get("left_out") else row["versions"][report["version"]]
        scored = [entry for entry in summary["files"] if entry["error"] is None]
        if len({entry["label"] for entry in scored}) < 2:
            continue
        labels = np.asarray([entry["label"] == "fake" for entry in scored])
        fpr, tpr, _ = roc_curve(labels, np.asarray([entry["fake_probability"] for entry in scored]))
        axes.plot(fpr, tpr, label=f"{row['key']} ({summary['auc']:.3f})", linewidth=1.2)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC, held out: {report['version']}")
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# --- the video model card's figures ---------------------------------------------------------------------------


def build_video_report(*, version, frames_path: Path) -> dict:
    """Every held-out video of the video version's card, recomputed from the shipped frame scores.

    The frame scores are the image run's out-of-fold ones (each video scored by a model that never trained on its
    group); the version's aggregate is applied to the frames a scan would sample, and its calibration is refitted
    leaving each video group out, exactly as `train_video_model` chose it. A version whose combination uses the
    sequence head cannot be recomputed without the training run's embeddings: its training figures are quoted.
    """
    from ml.train_video_crossfit import VideoScores, held_out_platt
    from ml.video_model import aggregate_frames

    settings = version.settings
    if float((settings.get("combine") or {}).get("sequence_weight", 0.0)) > 0:
        return {"version": version.label, "recomputed": False, "per_video": version.metrics.get("per_video", [])}
    saved = np.load(frames_path, allow_pickle=False)
    units = saved["units"].astype(str)
    frame_numbers = np.asarray([int(name.rsplit("#", 1)[1]) for name in saved["names"].astype(str)])
    frames = int(settings.get("frames", 32))
    frame_calibration = LogitCalibration.from_settings(settings["frame_calibration"])
    videos = []
    for unit in sorted(set(units.tolist())):
        members = np.flatnonzero(units == unit)
        members = members[np.argsort(frame_numbers[members], kind="stable")]
        video = VideoScores(
            unit=unit,
            label=int(saved["labels"][members[0]]),
            group=str(saved["groups"][members[0]]),
            fold=str(saved["folds"][members[0]]),
            frame_indices=frame_numbers[members],
            logits=saved["logits"][members].astype(np.float64),
            embeddings=np.zeros((len(members), 0), dtype=np.float32),
        )
        videos.append(video.scan_like(frames))
    scores = np.asarray(
        [aggregate_frames(frame_calibration.logits(video.logits), settings["aggregate"]) for video in videos]
    )
    labels = np.asarray([video.label for video in videos])
    groups = np.asarray([video.group for video in videos])
    probabilities = held_out_platt(scores, labels, groups)
    threshold, low, high = (float(settings[key]) for key in ("threshold", "uncertain_low", "uncertain_high"))
    frame_threshold = float(settings.get("frame_threshold", 0.5))
    per_video = []
    for video, probability in zip(videos, probabilities, strict=True):
        frame_probabilities = frame_calibration.probabilities(video.logits)
        per_video.append(
            {
                "video": video.unit,
                "source": video.source,
                "group": video.group,
                "label": "fake" if video.label else "real",
                "frames": len(video.frame_indices),
                "frames_over_threshold": int((frame_probabilities >= frame_threshold).sum()),
                "fake_probability": round(float(probability), 4),
                "verdict": "fake" if probability >= high else "real" if probability <= low else "uncertain",
                "correct": bool((probability >= threshold) == (video.label == 1)),
            }
        )
    subsets = {"all": [True] * len(videos)}
    for name in sorted({video.source for video in videos}):
        subsets[name] = [video.source == name for video in videos]
    figures = {}
    for name, members in subsets.items():
        keep = np.asarray(members)
        reals = keep & (labels == 0)
        figures[name] = {
            "n": int(keep.sum()),
            "correct": int(sum(row["correct"] for row, kept in zip(per_video, members, strict=True) if kept)),
            "auc": None
            if len(set(labels[keep].tolist())) < 2
            else round(roc_auc(labels[keep], probabilities[keep]), 4),
            "reals": int(reals.sum()),
            "reals_called_fake": int((probabilities[reals] >= threshold).sum()),
            "firm": round(float(((probabilities[keep] <= low) | (probabilities[keep] >= high)).mean()), 4),
        }
    return {
        "version": version.label,
        "recomputed": True,
        "aggregate": settings["aggregate"],
        "threshold": threshold,
        "uncertain_band": [low, high],
        "per_video": per_video,
        "figures": figures,
    }


def video_card_table(report: dict) -> str:
    """The video model card's figures as Markdown: per subset, then every held-out video."""
    if not report.get("recomputed"):
        return (
            f"`{report['version']}` weighs its sequence head; its held-out figures are the training run's "
            "(`metrics.per_video` of the version), not recomputed here."
        )
    band = report["uncertain_band"]
    lines = [
        f"Measured by `manage.py evaluate_report` on {report.get('date', '?')}, {report.get('machine', '?')}, for "
        f"`{report['version']}` (aggregate `{report['aggregate']['method']}`, threshold {report['threshold']}, "
        f"uncertain band {band[0]}-{band[1]}); every video's frames scored by an image model that never trained on "
        "its group, its calibration fitted without its group.",
        "",
        "| videos | right at the threshold | ROC-AUC | real videos called fake | firm verdicts |",
        "|---|---|---|---|---|",
    ]
    for name, figures in report["figures"].items():
        lines.append(
            f"| {name} ({figures['n']}) | **{figures['correct']}/{figures['n']}** | {_number(figures['auc'])} | "
            f"{figures['reals_called_fake']}/{figures['reals']} | {figures['firm'] * 100:.0f}% |"
        )
    lines += [
        "",
        "| video | label | frames over the frame threshold | p(fake) | verdict | right? |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["per_video"]:
        lines.append(
            f"| {row['video']} | {row['label']} | {row['frames_over_threshold']}/{row['frames']} | "
            f"{row['fake_probability']:.3f} | {row['verdict']} | {'yes' if row['correct'] else '**no**'} |"
        )
    return "\n".join(lines)
