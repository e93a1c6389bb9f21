"""The Analyzer contract with tiny untrained models: result shape, no-face answers, videos, bad media."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.errors import MediaError
from ml.pipeline import Decision

IMAGE_KEYS = {"kind", "verdict", "fake_probability", "faces", "media", "timings", "decision", "models", "notes"}


def test_an_image_with_a_face_gets_a_scored_face(tiny_analyzer, real_photo: Path) -> None:
    progress: list[dict] = []
    result = tiny_analyzer.analyze_image(real_photo, progress=progress.append)
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
    assert result["verdict"] == "no_face"
    assert result["fake_probability"] is None
    assert result["faces"] == []
    assert result["notes"]


def test_a_video_gets_one_track_with_frame_scores(tiny_analyzer, data_dir: Path) -> None:
    clip = sorted((data_dir / "videos" / "celebdf" / "real").iterdir())[0]
    progress: list[dict] = []
    result = tiny_analyzer.analyze_video(clip, progress=progress.append)
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
