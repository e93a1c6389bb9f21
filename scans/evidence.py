"""Evidence a finished scan keeps so a reviewer can see why it got its verdict.

Generated in the worker right after the analysis (never in a request), from the same decoded media, the
same crop function and the same model the analysis used:

- images: per face the crop the model scored and a Grad-CAM heatmap over it;
- videos: per tracked person a representative crop and heatmap, and for a fake or uncertain person the
  frames that scored highest (the ones that drove the verdict) as small JPEG thumbnails with the face boxed.

Files live in the private media storage under `evidence/<scan id>/`; their names are recorded in the result
(`result["evidence"]["files"]`, and per face `crop`, `heatmap`, `key_frames[].image`) and the only way to
read them is an owner-only view that refuses any name not recorded there.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from PIL import Image
from rq.timeouts import JobTimeoutException

from ml.faces import crop_square, iter_video_frames, load_image
from ml.gradcam import gradcam_heatmaps, overlay_heatmap
from ml.metadata import read_metadata_hints, read_video_metadata_hints
from scans.protected_media import private_file_response

if TYPE_CHECKING:
    from django.core.files.storage import Storage

    from ml.pipeline import Analyzer
    from scans.models import Scan

logger = logging.getLogger(__name__)

EVIDENCE_FOLDER = "evidence"
# Crops are saved at least this big: the tiny test model's 48 px crop would be unreadable on a page.
MIN_DISPLAY_PX = 192
THUMBNAIL_MAX_SIDE_PX = 320
KEY_FRAMES_PER_TRACK = 3
JPEG_QUALITY = 88
# Names this module writes; anything else is refused before the recorded list is even consulted.
EVIDENCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}\.jpg$")
KEY_FRAME_VERDICTS = frozenset({"fake", "uncertain"})


class EvidenceNotFound(Exception):
    """The name is not evidence recorded for this scan, or its file is gone."""


EVIDENCE_FAILED_NOTE = "The face crops and heatmaps could not be generated for this scan; the verdict is unaffected."


# Beyond these the verdict is given but the input is outside what the models were made for.
SCOPE_MAX_FACES = 8
SCOPE_MIN_SIDE_PX = 128


def scope_notes(result: dict[str, Any]) -> list[str]:
    """User-facing notes for inputs outside the models' scope that `ml` does not already flag.

    `ml` notes a missing face and faces smaller than it can judge; this adds more faces than the service
    is designed for (group photos, crowds) and a very low-resolution picture.
    """
    notes = []
    faces = [face for face in result.get("faces") or [] if isinstance(face, dict)]
    if len(faces) > SCOPE_MAX_FACES:
        notes.append(
            f"{len(faces)} faces found, more than the {SCOPE_MAX_FACES} this service is designed for: "
            "crowd scenes are out of scope and each face is small, so treat the verdict with caution"
        )
    media = result.get("media") if isinstance(result.get("media"), dict) else {}
    width, height = media.get("width"), media.get("height")
    if isinstance(width, int) and isinstance(height, int) and 0 < min(width, height) < SCOPE_MIN_SIDE_PX:
        notes.append(
            f"very low resolution ({width}x{height} px, under {SCOPE_MIN_SIDE_PX} px on the short side): "
            "too little detail for a reliable verdict"
        )
    return notes


def _metadata_hints(scan: Scan) -> dict[str, Any]:
    """The file's metadata hints (never part of the verdict); a failure to read them is recorded, not raised."""
    try:
        if scan.kind == "video":
            return read_video_metadata_hints(scan.file.path)
        return read_metadata_hints(scan.file.path)
    except JobTimeoutException:
        raise
    except Exception:
        logger.exception("Metadata hints of scan %s could not be read", scan.id)
        return {"readable": False, "hints": []}


# --- Generation (worker) -----------------------------------------------------------------------------


def scan_result_explained(*, scan: Scan, result: dict[str, Any], analyzer: Analyzer) -> dict[str, Any]:
    """The analysis result with its evidence files written and named (what the job stores).

    Evidence explains a verdict but is not part of it: if generating it fails, the verdict is still
    stored, with a note saying the evidence is missing, and the error is logged.
    """
    result = {**result, "notes": [*(result.get("notes") or []), *scope_notes(result)]}
    result["metadata"] = _metadata_hints(scan)
    try:
        return evidence_generate(scan=scan, result=result, analyzer=analyzer)
    except JobTimeoutException:
        raise
    except Exception:
        logger.exception("Evidence for scan %s could not be generated", scan.id)
        evidence_delete(scan_id=scan.id)
        return {**result, "notes": [*(result.get("notes") or []), EVIDENCE_FAILED_NOTE]}


def evidence_generate(*, scan: Scan, result: dict[str, Any], analyzer: Analyzer) -> dict[str, Any]:
    """Write the scan's evidence files and return a copy of `result` that names them.

    Any earlier files of the scan (a retried job) are removed first, so the folder holds exactly what the
    returned result records. A no-face result gets no files.
    """
    evidence_delete(scan_id=scan.id)
    enriched = dict(result)
    faces = [dict(face) for face in result.get("faces") or [] if isinstance(face, dict)]
    enriched["faces"] = faces
    written: list[str] = []
    if faces:
        writer = _EvidenceWriter(scan_id=scan.id, storage=default_storage)
        if scan.kind == "video":
            _video_evidence(scan, enriched, faces, analyzer, writer)
        else:
            _image_evidence(scan, faces, analyzer, writer)
        written = writer.written
    enriched["evidence"] = {"files": written, "heatmap_method": "grad-cam"}
    return enriched


class _EvidenceWriter:
    """Saves JPEGs under the scan's evidence folder and remembers their names."""

    def __init__(self, *, scan_id: uuid.UUID, storage: Storage) -> None:
        self.folder = evidence_folder(scan_id)
        self.storage = storage
        self.written: list[str] = []

    def save(self, name: str, pixels: np.ndarray) -> str:
        if not EVIDENCE_NAME.match(name):
            raise ValueError(f"not an evidence name: {name!r}")
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        stored = self.storage.save(f"{self.folder}/{name}", ContentFile(buffer.getvalue()))
        stored_name = stored.rsplit("/", 1)[-1]
        self.written.append(stored_name)
        return stored_name


def _image_evidence(scan: Scan, faces: list[dict[str, Any]], analyzer: Analyzer, writer: _EvidenceWriter) -> None:
    image = load_image(scan.file.path, max_pixels=analyzer.max_image_pixels)
    crop_rule = analyzer.image_model.crop_rule
    crops = np.stack([crop_square(image, face["box"], crop_rule) for face in faces])
    heatmaps = gradcam_heatmaps(analyzer.image_model.classifier, crops)
    for position, (face, crop, heatmap) in enumerate(zip(faces, crops, heatmaps, strict=True)):
        number = face.get("index", position)
        face["crop"] = writer.save(f"face-{number}-crop.jpg", _display_size(crop))
        face["heatmap"] = writer.save(f"face-{number}-heatmap.jpg", _display_size(overlay_heatmap(crop, heatmap)))


def _video_evidence(
    scan: Scan,
    result: dict[str, Any],
    people: list[dict[str, Any]],
    analyzer: Analyzer,
    writer: _EvidenceWriter,
) -> None:
    frames = [frame for frame in result.get("frames") or [] if isinstance(frame, dict)]
    fps = float((result.get("media") or {}).get("fps") or 0.0)
    representative_frames = {person["index"]: _representative_frame(person, frames) for person in people}
    key_frames = {person["index"]: _key_frames(person) for person in people}
    wanted = {frame for frame in representative_frames.values() if frame is not None}
    wanted.update(frame for chosen in key_frames.values() for frame, _score in chosen)
    boxes = _boxes_by_frame_and_track(frames)
    decoded = dict(iter_video_frames(scan.file.path, sorted(wanted)))

    if analyzer.video_model is not None:
        crop_rule, encoder, output_index = analyzer.video_model.crop_rule, analyzer.video_model.frame_encoder, 1
    else:
        crop_rule, encoder, output_index = analyzer.image_model.crop_rule, analyzer.image_model.classifier, 0
    crops, crop_people = [], []
    for person in people:
        frame_number = representative_frames[person["index"]]
        if frame_number is None or frame_number not in decoded:
            continue
        crops.append(crop_square(decoded[frame_number], person["box"], crop_rule))
        crop_people.append((person, frame_number))
    if crops:
        heatmaps = gradcam_heatmaps(encoder, np.stack(crops), output_index=output_index)
        for (person, frame_number), crop, heatmap in zip(crop_people, crops, heatmaps, strict=True):
            person["crop"] = writer.save(f"track-{person['index']}-crop.jpg", _display_size(crop))
            person["heatmap"] = writer.save(
                f"track-{person['index']}-heatmap.jpg", _display_size(overlay_heatmap(crop, heatmap))
            )
            person["crop_frame"] = frame_number
    for person in people:
        person["key_frames"] = []
        for frame_number, score in key_frames[person["index"]]:
            if frame_number not in decoded:
                continue
            box = boxes.get((frame_number, person["index"]))
            thumbnail = _thumbnail(decoded[frame_number], box)
            name = writer.save(f"track-{person['index']}-frame-{frame_number}.jpg", thumbnail)
            person["key_frames"].append(
                {
                    "index": frame_number,
                    "time_s": round(frame_number / fps, 3) if fps > 0 else None,
                    "fake_probability": score,
                    "image": name,
                }
            )


def _representative_frame(person: dict[str, Any], frames: list[dict[str, Any]]) -> int | None:
    """The frame the person's representative box (its most confident detection) comes from."""
    fallback = None
    for frame in frames:
        for face in frame.get("faces") or []:
            if face.get("track") != person.get("index"):
                continue
            if fallback is None:
                fallback = frame.get("index")
            if list(face.get("box") or []) == list(person.get("box") or []):
                return frame.get("index")
    return fallback


def _key_frames(person: dict[str, Any]) -> list[tuple[int, float]]:
    """The highest-scoring frames of a fake or uncertain person: the ones that drove its verdict."""
    if person.get("verdict") not in KEY_FRAME_VERDICTS:
        return []
    pairs = [
        (int(frame), float(score))
        for frame, score in zip(person.get("frame_indices") or [], person.get("frame_scores") or [], strict=False)
    ]
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return sorted(pairs[:KEY_FRAMES_PER_TRACK])


def _boxes_by_frame_and_track(frames: list[dict[str, Any]]) -> dict[tuple[int, int], list[int]]:
    return {
        (frame["index"], face["track"]): face["box"]
        for frame in frames
        for face in frame.get("faces") or []
        if isinstance(face, dict) and "track" in face and "box" in face
    }


def _display_size(crop: np.ndarray) -> np.ndarray:
    import cv2

    side = crop.shape[0]
    if side >= MIN_DISPLAY_PX:
        return crop
    return cv2.resize(crop, (MIN_DISPLAY_PX, MIN_DISPLAY_PX), interpolation=cv2.INTER_CUBIC)


def _thumbnail(frame: np.ndarray, box: list[int] | None) -> np.ndarray:
    """The frame scaled to fit THUMBNAIL_MAX_SIDE_PX, with the person's face boxed in red."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(1.0, THUMBNAIL_MAX_SIDE_PX / max(height, width))
    small = cv2.resize(
        frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    if box:
        x, y, box_width, box_height = (round(value * scale) for value in box)
        cv2.rectangle(small, (x, y), (x + box_width, y + box_height), (220, 38, 38), 2)
    return small


# --- Storage -----------------------------------------------------------------------------------------


def evidence_folder(scan_id: uuid.UUID | str) -> str:
    """The storage folder of one scan's evidence."""
    return f"{EVIDENCE_FOLDER}/{uuid.UUID(str(scan_id))}"


def evidence_names(result: Any) -> set[str]:
    """The evidence file names recorded in a scan's result (the only ones that may be served)."""
    evidence = result.get("evidence") if isinstance(result, dict) else None
    files = evidence.get("files") if isinstance(evidence, dict) else None
    return {name for name in files or [] if isinstance(name, str) and EVIDENCE_NAME.match(name)}


def evidence_open(*, scan: Scan, name: str) -> io.BufferedReader:
    """Open one of the scan's recorded evidence files for reading; EvidenceNotFound otherwise."""
    if not EVIDENCE_NAME.match(name or "") or name not in evidence_names(scan.result):
        raise EvidenceNotFound(name)
    try:
        return default_storage.open(f"{evidence_folder(scan.id)}/{name}", "rb")
    except (FileNotFoundError, OSError):
        raise EvidenceNotFound(name) from None


def evidence_file_response(*, scan: Scan, name: str) -> HttpResponse:
    """One recorded evidence image of `scan` as a private JPEG response; Http404 for any other name.

    The caller has already checked that the requester owns the scan.
    """
    if not EVIDENCE_NAME.match(name or "") or name not in evidence_names(scan.result):
        raise Http404("No such evidence for this scan.")
    return private_file_response(
        storage=default_storage,
        name=f"{evidence_folder(scan.id)}/{name}",
        content_type="image/jpeg",
        download_name=name,
        as_attachment=False,
    )


def evidence_for_api(*, result: Any, url_for: Callable[[str], str]) -> dict[str, Any]:
    """Per face (image) or person (video) the evidence URLs, and for videos the per-frame timelines.

    `url_for(name)` turns a recorded evidence name into an absolute URL of the caller's choosing.
    """
    result = result if isinstance(result, dict) else {}
    recorded = evidence_names(result)

    def url(name: Any) -> str | None:
        return url_for(name) if isinstance(name, str) and name in recorded else None

    faces = []
    timelines = []
    fps = (result.get("media") or {}).get("fps") if isinstance(result.get("media"), dict) else None
    for face in result.get("faces") or []:
        if not isinstance(face, dict):
            continue
        entry = {
            "index": face.get("index"),
            "box": face.get("box"),
            "fake_probability": face.get("fake_probability"),
            "verdict": face.get("verdict"),
            "crop_url": url(face.get("crop")),
            "heatmap_url": url(face.get("heatmap")),
        }
        if "frame_scores" in face:
            entry["key_frames"] = [
                {
                    **{key: frame.get(key) for key in ("index", "time_s", "fake_probability")},
                    "url": url(frame.get("image")),
                }
                for frame in face.get("key_frames") or []
                if isinstance(frame, dict)
            ]
            timelines.append(
                {
                    "track": face.get("index"),
                    "verdict": face.get("verdict"),
                    "points": [
                        {
                            "frame": frame,
                            "time_s": round(frame / fps, 3) if isinstance(fps, int | float) and fps > 0 else None,
                            "fake_probability": score,
                        }
                        for frame, score in zip(
                            face.get("frame_indices") or [], face["frame_scores"] or [], strict=False
                        )
                    ],
                }
            )
        faces.append(entry)
    return {
        "faces": faces,
        "timeline": timelines if result.get("kind") == "video" or timelines else None,
        "decision": result.get("decision"),
        "heatmap_method": (result.get("evidence") or {}).get("heatmap_method") if recorded else None,
    }


def evidence_read(*, scan: Scan, name: str) -> bytes:
    """The bytes of one recorded evidence file (exports embed them)."""
    with evidence_open(scan=scan, name=name) as handle:
        return handle.read()


def evidence_delete(*, scan_id: uuid.UUID | str) -> None:
    """Remove a scan's evidence folder and everything in it (nothing happens when there is none)."""
    shutil.rmtree(_folder_path(scan_id), ignore_errors=True)


def evidence_copy(*, from_scan_id: uuid.UUID | str, to_scan_id: uuid.UUID | str, names: Iterable[str]) -> None:
    """Copy recorded evidence files from one scan's folder to another's (a reused result)."""
    source, target = _folder_path(from_scan_id), _folder_path(to_scan_id)
    for name in names:
        if not EVIDENCE_NAME.match(name) or not (source / name).is_file():
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)


def _folder_path(scan_id: uuid.UUID | str) -> Path:
    return Path(default_storage.path(evidence_folder(scan_id)))


# --- Timeline chart (detail page) ----------------------------------------------------------------------

CHART_WIDTH = 640
CHART_HEIGHT = 220
_PLOT_LEFT, _PLOT_RIGHT, _PLOT_TOP, _PLOT_BOTTOM = 44, 12, 12, 30


def timeline_chart(result: Any) -> dict[str, Any] | None:
    """Geometry of the per-person fake-probability timeline of a video result, for an inline SVG.

    x is the video's time axis (frame number / fps, over the whole duration), y the fake probability from 0
    (bottom) to 1 (top); the decision threshold and the uncertain band are horizontal guides, and the key
    frames are flagged so the template can highlight them. None when there is nothing to draw.
    """
    if not isinstance(result, dict):
        return None
    media = result.get("media") if isinstance(result.get("media"), dict) else {}
    fps = media.get("fps") if isinstance(media.get("fps"), int | float) and media.get("fps") > 0 else None
    people = [face for face in result.get("faces") or [] if isinstance(face, dict) and face.get("frame_scores")]
    if not people:
        return None

    def seconds(frame: Any) -> float:
        return float(frame) / fps if fps else float(frame)

    last_time = max(seconds(frame) for person in people for frame in person.get("frame_indices") or [0])
    duration = media.get("duration_s") if fps and isinstance(media.get("duration_s"), int | float) else None
    span = max(float(duration or 0.0), last_time, 1e-6)
    plot_width = CHART_WIDTH - _PLOT_LEFT - _PLOT_RIGHT
    plot_height = CHART_HEIGHT - _PLOT_TOP - _PLOT_BOTTOM

    def x_of(time_s: float) -> float:
        return round(_PLOT_LEFT + time_s / span * plot_width, 1)

    def y_of(probability: float) -> float:
        return round(_PLOT_TOP + (1.0 - min(max(probability, 0.0), 1.0)) * plot_height, 1)

    decision = result.get("decision") if isinstance(result.get("decision"), dict) else {}
    tracks = []
    for person in people:
        key = {entry.get("index") for entry in person.get("key_frames") or [] if isinstance(entry, dict)}
        markers = [
            {
                "x": x_of(seconds(frame)),
                "y": y_of(float(score)),
                "frame": frame,
                "time_s": round(seconds(frame), 2),
                "percent": round(float(score) * 100, 1),
                "key": frame in key,
            }
            for frame, score in zip(person.get("frame_indices") or [], person["frame_scores"], strict=False)
            if isinstance(score, int | float)
        ]
        tracks.append(
            {
                "index": person.get("index"),
                "verdict": person.get("verdict") or "unknown",
                "points": " ".join(f"{marker['x']},{marker['y']}" for marker in markers),
                "markers": markers,
            }
        )
    threshold = decision.get("threshold")
    low, high = decision.get("uncertain_low"), decision.get("uncertain_high")
    band = None
    if isinstance(low, int | float) and isinstance(high, int | float) and high > low:
        band = {"y": y_of(high), "height": round(y_of(low) - y_of(high), 1)}
    tick_count = 5
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": _PLOT_LEFT,
        "right": CHART_WIDTH - _PLOT_RIGHT,
        "plot_width": plot_width,
        "top": _PLOT_TOP,
        "bottom": CHART_HEIGHT - _PLOT_BOTTOM,
        "time_unit": "s" if fps else "frame",
        "threshold": None
        if not isinstance(threshold, int | float)
        else {"y": y_of(threshold), "percent": round(threshold * 100, 1)},
        "band": band,
        "tracks": tracks,
        "x_ticks": [
            {"x": x_of(span * step / tick_count), "label": f"{span * step / tick_count:.1f}"}
            for step in range(tick_count + 1)
        ],
        "y_ticks": [{"y": y_of(value / 100), "label": f"{value}%"} for value in (0, 25, 50, 75, 100)],
    }
