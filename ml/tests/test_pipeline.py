"""The Analyzer contract with tiny untrained models: result shape, no-face answers, videos, bad media, the
explanation made in the same pass, the manipulation type beside the verdict, and one decode per analysis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.errors import MediaError
from ml.explain import MIN_DISPLAY_PX, THUMBNAIL_MAX_SIDE_PX
from ml.faces import CropRule
from ml.image_model import MANIPULATION_TYPES
from ml.pipeline import judged, scope_notes, small_face_reason
from ml.result import Analysis, Decision, FaceResult

IMAGE_KEYS = {"kind", "verdict", "fake_probability", "faces", "media", "timings", "decision", "models", "notes"}


def _clip(data_dir: Path) -> Path:
    return sorted((data_dir / "videos" / "celebdf" / "real").iterdir())[0]


def test_an_image_with_a_face_gets_a_scored_face(tiny_analyzer, real_photo: Path) -> None:
    progress: list[dict] = []
    result = tiny_analyzer.analyze_image(real_photo, progress=progress.append).to_json()
    assert set(result) >= IMAGE_KEYS
    assert result["verdict"] in {"real", "fake", "uncertain"}
    assert 0.0 <= result["fake_probability"] <= 1.0
    [face] = result["faces"]
    assert {"index", "box", "confidence", "landmarks", "fake_probability", "verdict"} <= set(face)
    assert result["media"] == {"width": 178, "height": 218}
    assert {"decode_s", "detect_s", "model_s", "total_s"} <= set(result["timings"])
    assert result["models"] == {"image": "tiny-image@test", "video": "tiny-video@test"}
    assert {payload["stage"] for payload in progress} >= {"decoding", "detecting faces"}
    json.dumps(result)


def test_an_image_without_a_face_is_answered_no_face(tiny_analyzer, face_free_photo: Path) -> None:
    result = tiny_analyzer.analyze_image(face_free_photo)
    assert result.verdict == "no_face"
    assert result.fake_probability is None
    assert result.faces == ()
    assert result.notes


def test_a_video_gets_one_track_with_frame_scores(tiny_analyzer, data_dir: Path) -> None:
    progress: list[dict] = []
    result = tiny_analyzer.analyze_video(_clip(data_dir), progress=progress.append).to_json()
    assert result["media"]["frames_analyzed"] == 8
    assert result["media"]["frame_count"] == 24
    [person] = result["faces"]
    assert person["n_frames"] == len(person["frame_indices"]) == len(person["frame_scores"])
    assert 0.0 <= person["sequence_probability"] <= 1.0
    assert 0.0 <= person["aggregate_probability"] <= 1.0
    assert result["fake_probability"] == person["fake_probability"]
    assert [frame["index"] for frame in result["frames"]] == person["frame_indices"]
    assert progress[-1]["frames_done"] == progress[-1]["frames_total"] == 8
    json.dumps(result)


def test_corrupt_media_raises_a_readable_media_error(tiny_analyzer, tmp_path: Path) -> None:
    fake_video = tmp_path / "clip.mp4"
    fake_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    with pytest.raises(MediaError) as caught:
        tiny_analyzer.analyze_video(fake_video)
    assert "video" in str(caught.value).lower()
    with pytest.raises(MediaError):
        tiny_analyzer.analyze_image(fake_video)


def test_the_decision_band_gives_uncertain_between_its_edges() -> None:
    decision = Decision.from_settings({"threshold": 0.5, "uncertain_low": 0.3, "uncertain_high": 0.7})
    assert [decision.verdict(p) for p in (0.1, 0.3, 0.5, 0.7, 0.95)] == ["real", "real", "uncertain", "fake", "fake"]


def test_a_stored_analysis_reads_back_as_the_same_result(tiny_analyzer, real_photo: Path, data_dir: Path) -> None:
    for analysis in (
        tiny_analyzer.analyze_image(real_photo, explain=True),
        tiny_analyzer.analyze_video(_clip(data_dir), explain=True),
    ):
        document = json.loads(json.dumps(analysis.to_json()))

        assert Analysis.from_json(document, kind=analysis.kind) == analysis


def test_explaining_a_photo_names_a_crop_and_a_heatmap_per_face(tiny_analyzer, real_photo: Path) -> None:
    analysis = tiny_analyzer.analyze_image(real_photo, explain=True)

    [face] = analysis.faces
    assert analysis.explanation.files == (face.crop, face.heatmap)
    for name in analysis.explanation.files:
        pixels = analysis.explanation.images[name]
        assert pixels.dtype == np.uint8 and pixels.shape == (MIN_DISPLAY_PX, MIN_DISPLAY_PX, 3)
    assert analysis.metadata["readable"] is True
    assert analysis.timings.evidence_s > 0


def test_explaining_a_video_names_each_persons_crop_heatmap_and_key_frames(tiny_analyzer, data_dir: Path) -> None:
    analysis = tiny_analyzer.analyze_video(_clip(data_dir), explain=True)

    [person] = analysis.faces
    assert person.crop_frame in person.frame_indices
    assert {person.crop, person.heatmap} <= set(analysis.explanation.files)
    # The tiny model averages its frames: the key frames are exactly those scoring above the person.
    above = [score for score in person.frame_scores if score > person.fake_probability]
    if person.verdict in {"fake", "uncertain"}:
        assert [frame.fake_probability for frame in person.key_frames] == sorted(above, reverse=True)[:6]
    else:
        assert person.key_frames == ()
    assert analysis.scoring == tiny_analyzer.video_scoring
    for key_frame in person.key_frames:
        assert max(analysis.explanation.images[key_frame.image].shape[:2]) <= THUMBNAIL_MAX_SIDE_PX


def test_a_failure_to_explain_keeps_the_verdict_and_notes_it(tiny_analyzer, real_photo: Path, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("gradient tape exploded")

    monkeypatch.setattr("ml.explain.gradcam_heatmaps", broken)

    analysis = tiny_analyzer.analyze_image(real_photo, explain=True)

    assert analysis.verdict in {"real", "fake", "uncertain"}
    assert analysis.explanation is None and analysis.faces[0].crop is None
    assert "evidence" not in analysis.to_json()
    assert "could not be generated" in analysis.notes[-1]


def test_a_fatal_error_is_not_written_off_as_missing_evidence(tiny_analyzer, real_photo: Path, monkeypatch) -> None:
    class Stopped(Exception):
        pass

    def stopped(*args: object, **kwargs: object) -> None:
        raise Stopped

    monkeypatch.setattr("ml.explain.gradcam_heatmaps", stopped)
    monkeypatch.setattr(tiny_analyzer, "fatal_errors", (Stopped,))

    with pytest.raises(Stopped):
        tiny_analyzer.analyze_image(real_photo, explain=True)


def test_a_face_gets_the_manipulation_type_it_most_resembles(tiny_analyzer, real_photo: Path, data_dir: Path) -> None:
    [face] = tiny_analyzer.analyze_image(real_photo).faces
    [person] = tiny_analyzer.analyze_video(_clip(data_dir)).faces

    for guess in (face.manipulation, person.manipulation):
        assert tuple(guess.distribution) == MANIPULATION_TYPES
        assert sum(guess.distribution.values()) == pytest.approx(1.0, abs=1e-5)
        assert guess.most_likely == max(guess.distribution, key=guess.distribution.get)
        assert guess.probability == guess.distribution[guess.most_likely]


def test_a_model_without_the_manipulation_head_gives_no_manipulation_type(
    tiny_analyzer_without_head, real_photo: Path, data_dir: Path
) -> None:
    photo = tiny_analyzer_without_head.analyze_image(real_photo, explain=True)
    video = tiny_analyzer_without_head.analyze_video(_clip(data_dir), explain=True)

    assert photo.faces[0].manipulation is None and video.faces[0].manipulation is None
    assert photo.to_json()["faces"][0]["manipulation"] is None
    assert photo.verdict in {"real", "fake", "uncertain"} and photo.explanation.files


def test_an_explained_analysis_with_another_crop_rule_decodes_its_media_once(
    tiny_analyzer, real_photo: Path, data_dir: Path, decodes: dict[str, int]
) -> None:
    other_rule = CropRule(margin=0.3, size=64)

    photo = tiny_analyzer.analyze_image(real_photo, explain=True, crop_rules=[other_rule])
    video = tiny_analyzer.analyze_video(_clip(data_dir), explain=True, crop_rules=[other_rule])

    assert decodes == {"load_image": 1, "iter_video_frames": 1}
    assert photo.crops[other_rule][0].shape == (1, 64, 64, 3)
    assert video.crops[other_rule][0].shape == (video.faces[0].n_frames, 64, 64, 3)


def test_scope_notes_flag_crowds_and_very_low_resolution() -> None:
    assert "12 faces found" in " ".join(scope_notes(faces=12, width=1920, height=1080))
    assert "very low resolution (96x80 px" in " ".join(scope_notes(faces=1, width=96, height=80))
    assert scope_notes(faces=1, width=640, height=480) == []


def _face(index: int, probability: float, verdict: str, side: int = 120) -> FaceResult:
    return FaceResult(index=index, box=(10, 10, side, side), fake_probability=probability, verdict=verdict)


def test_a_face_too_small_to_judge_downgrades_a_confident_verdict_to_uncertain_with_the_reason() -> None:
    tiny = _face(0, 0.947, "fake", side=28)
    small = [small_face_reason("face 1", tiny.box)]

    [face], verdict, probability, reasons = judged([tiny], small, [])

    assert verdict == "uncertain" and face.verdict == "uncertain"
    assert probability == 0.947
    assert reasons == ("face 1 is 28 px across, smaller than the 40 px needed for a reliable verdict",)
    assert face.out_of_scope == reasons[0]


def test_a_clearly_fake_face_beside_a_tiny_one_still_makes_the_photo_fake() -> None:
    faces = [_face(0, 0.99, "fake", side=28), _face(1, 0.90, "fake")]
    small = [small_face_reason(f"face {face.index + 1}", face.box) for face in faces]

    scoped, verdict, probability, reasons = judged(faces, small, [])

    assert [face.verdict for face in scoped] == ["uncertain", "fake"]
    assert (verdict, probability, reasons) == ("fake", 0.90, ())


def test_an_out_of_scope_input_downgrades_a_real_verdict_too() -> None:
    crowd = scope_notes(faces=12, width=1920, height=1080)

    _scoped, verdict, _probability, reasons = judged([_face(0, 0.02, "real")], [None], crowd)

    assert verdict == "uncertain" and reasons == tuple(crowd)


def test_a_tiny_face_in_a_photo_is_answered_uncertain_with_the_reason(
    tiny_analyzer, real_photo: Path, tmp_path: Path
) -> None:
    from PIL import Image

    with Image.open(real_photo) as photo:
        small = photo.convert("RGB").resize((round(photo.width * 0.35), round(photo.height * 0.35)))
    canvas = Image.new("RGB", (320, 240), (128, 128, 128))
    canvas.paste(small, (100, 60))
    path = tmp_path / "tiny-face.png"
    canvas.save(path)

    result = tiny_analyzer.analyze_image(path)

    [face] = result.faces
    assert min(face.box[2:]) < 40
    assert result.verdict == face.verdict == "uncertain"
    assert len(result.out_of_scope) == 1 and "smaller than the 40 px" in result.out_of_scope[0]
    assert result.to_json()["out_of_scope"] == list(result.out_of_scope)
