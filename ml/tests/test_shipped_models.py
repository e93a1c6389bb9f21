"""The default models shipped in ml/weights/: they load fast and score real media the right way round."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ml.pipeline import Analyzer, ModelSpec

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS / "manifest.json"

pytestmark = pytest.mark.real_models


@pytest.fixture(scope="module")
def shipped() -> dict[str, ModelSpec]:
    if not MANIFEST.is_file():
        pytest.fail("ml/weights/manifest.json is missing: the default models must ship with the repository")
    specs = {}
    for entry in json.loads(MANIFEST.read_text())["models"]:
        weights = WEIGHTS / entry["weights"]
        assert weights.stat().st_size < 8_000_000, f"{weights.name} should be a few MB"
        specs[entry["kind"]] = ModelSpec(str(weights), entry["settings"], f"{entry['name']}@{entry['version']}")
    assert set(specs) == {"image", "video"}
    return specs


@pytest.fixture(scope="module")
def analyzer(shipped: dict[str, ModelSpec]) -> Analyzer:
    started = time.monotonic()
    built = Analyzer(shipped["image"], shipped["video"])
    assert time.monotonic() - started < 30, "loading both models must take seconds, not minutes"
    return built


def test_the_shipped_image_model_tells_a_real_photo_from_a_generated_one(analyzer: Analyzer, data_dir: Path) -> None:
    val = data_dir / "images" / "stylegan-celeba" / "val"
    real = analyzer.analyze_image(sorted((val / "real").iterdir())[1])
    fake = analyzer.analyze_image(sorted((val / "fake").iterdir())[1])
    assert real.fake_probability < fake.fake_probability
    assert real.verdict == "real"
    assert fake.verdict == "fake"


def test_the_shipped_video_model_scores_a_real_video(analyzer: Analyzer, data_dir: Path) -> None:
    clip = data_dir / "videos" / "ffpp" / "real" / "ffpp_004.mp4"
    result = analyzer.analyze_video(clip)
    assert len(result.faces) >= 1
    assert 0.0 <= result.fake_probability <= 1.0
    assert result.media.frames_analyzed == 32
