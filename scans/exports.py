"""Exports of scans: one scan as JSON or as a one-page PDF report, and a history as CSV.

The PDF is drawn with matplotlib's PDF backend on a single A4 figure (so it is one page by construction):
the picture with its face boxes, the verdict in words, per face the crop and its heatmap (and, smaller, the
kind of fake it most resembles), the video timeline, model versions, SHA-256 and times. Everything comes from
the scan row, read through `Scan.analysis`, and its stored evidence; nothing is recomputed. The JSON export's
`result` is the stored analysis document itself.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.http import HttpResponse
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.result import Analysis, ScoredFace, TrackResult
from scans.evidence import EvidenceNotFound, evidence_read
from scans.wording import VERDICT_HEADLINES, manipulation_name, manipulation_text

if TYPE_CHECKING:
    from scans.models import Scan

EXPORT_SCHEMA = "unmask.scan/1"
# The JSON Schema (draft 2020-12) that every JSON export validates against; its `$id` is EXPORT_SCHEMA.
EXPORT_JSON_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "scan-export.schema.json"
PDF_FACES = 4
A4_INCHES = (8.27, 11.69)
CSV_COLUMNS = (
    "id",
    "uploaded_at",
    "file_name",
    "kind",
    "status",
    "verdict",
    "fake_probability",
    # Which kind of fake the deciding (most suspicious) face most resembles; empty without the model's head.
    "most_like",
    "most_like_probability",
    "faces",
    "sha256",
    "size_bytes",
    "image_model",
    "video_model",
    "finished_at",
    "reused_from",
    "error",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection through a file name).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def _model_label(model_version: Any) -> str | None:
    return model_version.label if model_version is not None else None


def scan_export_data(*, scan: Scan) -> dict[str, Any]:
    """One scan as a JSON-serialisable document: the file's identity, its state, its models and its full result."""
    return {
        "schema": EXPORT_SCHEMA,
        "exported_at": timezone.now().isoformat(),
        "scan": {
            "id": str(scan.id),
            "original_filename": scan.original_filename,
            "kind": scan.kind,
            "content_type": scan.content_type,
            "size_bytes": scan.size_bytes,
            "sha256": scan.sha256,
            "status": scan.status,
            "verdict": scan.verdict or None,
            "verdict_text": VERDICT_HEADLINES.get(scan.verdict),
            "fake_probability": scan.fake_probability,
            "error": scan.error_message or None,
            "created_at": _iso(scan.created_at),
            "started_at": _iso(scan.started_at),
            "finished_at": _iso(scan.finished_at),
            "reused_from": str(scan.reused_from_id) if scan.reused_from_id else None,
        },
        "models": {"image": _model_label(scan.image_model_version), "video": _model_label(scan.video_model_version)},
        "result": scan.result,
    }


# --- CSV ---------------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def scans_export_csv(*, scans: Iterable[Scan]) -> str:
    """The scans as CSV text, one row per scan in the given order, with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for scan in scans:
        faces = scan.analysis.faces
        guess = _deciding_face(faces).manipulation if faces else None
        row = (
            str(scan.id),
            _iso(scan.created_at),
            scan.original_filename,
            scan.kind,
            scan.status,
            scan.verdict,
            "" if scan.fake_probability is None else f"{scan.fake_probability:.6f}",
            "" if guess is None else guess.most_likely,
            "" if guess is None else f"{guess.probability:.6f}",
            len(faces) if scan.status == "done" else "",
            scan.sha256,
            scan.size_bytes,
            _model_label(scan.image_model_version) or "",
            _model_label(scan.video_model_version) or "",
            _iso(scan.finished_at) or "",
            str(scan.reused_from_id) if scan.reused_from_id else "",
            scan.error_message,
        )
        writer.writerow([_csv_cell(value) for value in row])
    return buffer.getvalue()


def _deciding_face(faces: tuple[ScoredFace, ...]) -> ScoredFace:
    """The face or person whose probability is the scan's (the most suspicious one; the first on a tie)."""
    return max(faces, key=lambda face: face.fake_probability)


# --- PDF ---------------------------------------------------------------------------------------------


def scan_export_pdf(*, scan: Scan) -> bytes:
    """A one-page A4 PDF report of the scan (see the module docstring for what it shows)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    analysis = scan.analysis
    figure = Figure(figsize=A4_INCHES)
    figure.text(0.05, 0.965, "Unmask scan report", fontsize=18, weight="bold")
    figure.text(0.05, 0.945, _clip(scan.original_filename, 90), fontsize=10, color="#444444")

    picture_axes = figure.add_axes((0.05, 0.64, 0.42, 0.29))
    picture_axes.set_axis_off()
    picture = _thumbnail(scan, analysis)
    if picture is not None:
        pixels, scale = picture
        picture_axes.imshow(pixels)
        if not analysis.is_video:
            for face in analysis.faces:
                x, y, width, height = (value * scale for value in face.box)
                colour = _verdict_colour(face.verdict)
                picture_axes.add_patch(Rectangle((x, y), width, height, fill=False, edgecolor=colour, linewidth=2))
                picture_axes.text(
                    x,
                    y - 3,
                    f"#{face.index} {face.fake_probability:.0%}",
                    color="white",
                    fontsize=8,
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 1},
                )
    else:
        picture_axes.text(0.5, 0.5, "no preview available", ha="center", va="center", color="#888888")

    figure.text(0.52, 0.915, "Verdict", fontsize=10, color="#666666")
    figure.text(
        0.52,
        0.89,
        VERDICT_HEADLINES.get(scan.verdict, scan.get_status_display()),
        fontsize=14,
        weight="bold",
        color=_verdict_colour(scan.verdict),
    )
    facts = _verdict_lines(scan, analysis) + [""] + _fact_lines(scan, analysis)
    figure.text(0.52, 0.875, "\n".join(facts), fontsize=8, va="top", family="monospace", linespacing=1.4)

    faces_with_evidence = [face for face in analysis.faces if face.crop or face.heatmap][:PDF_FACES]
    if faces_with_evidence:
        figure.text(0.05, 0.615, "Faces: crop the model scored, and its Grad-CAM heatmap", fontsize=10, weight="bold")
    for position, face in enumerate(faces_with_evidence):
        left = 0.05 + position * 0.23
        for offset, name in ((0.0, face.crop), (0.105, face.heatmap)):
            axes = figure.add_axes((left + offset, 0.49, 0.1, 0.1))
            axes.set_axis_off()
            pixels = _evidence_pixels(scan, name)
            if pixels is not None:
                axes.imshow(pixels)
        figure.text(left, 0.475, f"#{face.index}: {face.fake_probability:.1%} fake ({face.verdict})", fontsize=8)
        if face.manipulation is not None:
            # Secondary to the verdict: smaller and muted, as on the result page.
            figure.text(left, 0.462, manipulation_text(face.manipulation), fontsize=6.5, color="#666666")

    people: list[TrackResult] = [face for face in analysis.faces if analysis.is_video and face.frame_scores]
    if people:
        _draw_timeline(figure.add_axes((0.08, 0.25, 0.87, 0.18)), analysis, people)
        notes_top = 0.2
    else:
        notes_top = 0.44
    lines = _notes_lines(analysis)
    figure.text(0.05, notes_top, "\n".join(lines), fontsize=8, va="top", linespacing=1.4)
    figure.text(
        0.05,
        0.02,
        f"Generated {timezone.now():%Y-%m-%d %H:%M:%S %Z} by Unmask. The verdict is a model's estimate, "
        'not proof; metadata hints and the "most like" manipulation type are not part of it.',
        fontsize=7,
        color="#666666",
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf", metadata={"Title": "Unmask scan report", "Creator": "Unmask"})
    return buffer.getvalue()


def _verdict_colour(verdict: str) -> str:
    return {"real": "#15803d", "fake": "#b91c1c", "uncertain": "#a16207"}.get(verdict, "#475569")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _verdict_lines(scan: Scan, analysis: Analysis) -> list[str]:
    lines = []
    if scan.fake_probability is not None:
        lines.append(f"Fake probability: {scan.fake_probability:.1%}")
    decision = analysis.decision
    if decision is not None:
        low, high = decision.uncertain_low, decision.uncertain_high
        lines.append(f"Uncertain band: {low:.0%} to {high:.0%}")
        lines.append(f"  (fake at or above {high:.0%}, real at or below {low:.0%})")
    if analysis.faces and (guess := _deciding_face(analysis.faces).manipulation) is not None:
        lines.append(f"Most like: {manipulation_name(guess.most_likely)} ({guess.probability:.0%})")
        lines.append("  (kind of fake it resembles; not the verdict)")
    if scan.status == "failed":
        lines.extend(textwrap.wrap(f"Failed: {scan.error_message}", 48))
    return lines


def _fact_lines(scan: Scan, analysis: Analysis) -> list[str]:
    image_model = analysis.models.image or _model_label(scan.image_model_version) or "-"
    lines = [
        f"Kind: {scan.get_kind_display()} ({scan.content_type}, {scan.size_bytes:,} bytes)",
        "SHA-256:",
        f"  {scan.sha256[:32]}",
        f"  {scan.sha256[32:]}",
        f"Uploaded: {scan.created_at:%Y-%m-%d %H:%M:%S %Z}",
        f"Analysed: {scan.finished_at:%Y-%m-%d %H:%M:%S %Z}" if scan.finished_at else "Analysed: -",
        f"Image model: {image_model}",
    ]
    if scan.kind == "video":
        lines.append(f"Video model: {analysis.models.video or _model_label(scan.video_model_version) or '-'}")
    if scan.reused_from_id:
        lines.append(f"Result reused from scan {scan.reused_from_id}")
    stages = [
        f"{stage.name.removesuffix('_s')} {seconds:.2f}s"
        for stage in fields(analysis.timings)
        if (seconds := getattr(analysis.timings, stage.name)) is not None
    ]
    if stages:
        lines.extend(textwrap.wrap("Timings: " + ", ".join(stages), 48))
    return lines


def _notes_lines(analysis: Analysis) -> list[str]:
    lines = []
    if analysis.notes:
        lines.append("Notes")
        for note in analysis.notes[:6]:
            lines.extend(textwrap.wrap(f"- {note}", 110))
    hints = (analysis.metadata or {}).get("hints") or []
    if hints:
        lines.append("")
        lines.append("Metadata hints (not part of the verdict)")
        for hint in hints[:6]:
            lines.extend(textwrap.wrap(f"- {hint}", 110))
    return lines


def _draw_timeline(axes: Any, analysis: Analysis, people: list[TrackResult]) -> None:
    fps = analysis.media.fps if analysis.media.fps and analysis.media.fps > 0 else None
    decision = analysis.decision
    if decision is not None:
        axes.axhspan(decision.uncertain_low, decision.uncertain_high, color="#fef3c7", label="uncertain band")
        axes.axhline(decision.threshold, color="#b91c1c", linestyle="--", linewidth=1, label="threshold")
    for person in people:
        times = [frame / fps if fps else frame for frame in person.frame_indices]
        axes.plot(times, person.frame_scores, marker="o", markersize=3, linewidth=1.2, label=f"person #{person.index}")
        key = {key_frame.index for key_frame in person.key_frames}
        key_points = [
            (time, score)
            for time, frame, score in zip(times, person.frame_indices, person.frame_scores, strict=False)
            if frame in key
        ]
        if key_points:
            axes.scatter(*zip(*key_points, strict=True), s=40, color="#b91c1c", zorder=3)
    duration = analysis.media.duration_s
    if fps and duration:
        axes.set_xlim(0, duration)
    axes.set_ylim(0, 1)
    axes.set_xlabel("time (s)" if fps else "frame", fontsize=8)
    axes.set_ylabel("fake probability", fontsize=8)
    axes.set_title("Timeline (red dots: frames that drove the verdict)", fontsize=9)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7, loc="upper right")


def _evidence_pixels(scan: Scan, name: str | None) -> np.ndarray | None:
    if name is None:
        return None
    try:
        with Image.open(io.BytesIO(evidence_read(scan=scan, name=name))) as image:
            return np.asarray(image.convert("RGB"))
    except (EvidenceNotFound, UnidentifiedImageError, OSError):
        return None


def _thumbnail(scan: Scan, analysis: Analysis) -> tuple[np.ndarray, float] | None:
    """The picture to show, at most 800 px, and its scale from original pixels (for drawing face boxes)."""
    if analysis.is_video:
        key_frame_names = [key_frame.image for face in analysis.faces for key_frame in face.key_frames]
        for name in [*key_frame_names, *(face.crop for face in analysis.faces)]:
            pixels = _evidence_pixels(scan, name)
            if pixels is not None:
                return pixels, 1.0
        return None
    try:
        with scan.file.open("rb") as handle, Image.open(handle) as opened:
            opened.seek(0)
            oriented = ImageOps.exif_transpose(opened).convert("RGB")
    except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError):
        return None
    scale = min(1.0, 800 / max(oriented.size))
    if scale < 1.0:
        oriented = oriented.resize((max(1, round(oriented.width * scale)), max(1, round(oriented.height * scale))))
    return np.asarray(oriented), scale


def export_response(*, content: bytes | str, content_type: str, filename: str) -> HttpResponse:
    """An export as a download: attachment, never sniffed, never cached by shared caches."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def export_json_bytes(*, scan: Scan) -> bytes:
    """The JSON export of one scan, pretty-printed UTF-8."""
    return json.dumps(scan_export_data(scan=scan), indent=2, ensure_ascii=False).encode()
