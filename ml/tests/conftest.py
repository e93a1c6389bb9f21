"""Fixtures shared by the ml tests: one MTCNN detector and tiny Analyzers per session (each takes seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

VAL = Path("images") / "stylegan-celeba" / "val"


@pytest.fixture(scope="session")
def detector():
    from ml.faces import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def tiny_analyzer(tmp_path_factory: pytest.TempPathFactory):
    from ml.pipeline import Analyzer
    from ml.testing import build_tiny_models

    image_spec, video_spec = build_tiny_models(tmp_path_factory.mktemp("tiny-models"))
    return Analyzer(image_spec, video_spec, video_frames=8)


@pytest.fixture(scope="session")
def tiny_analyzer_without_head(tmp_path_factory: pytest.TempPathFactory):
    """Tiny models without the manipulation-type head, like the shipped v1 models."""
    from ml.pipeline import Analyzer
    from ml.testing import build_tiny_models

    image_spec, video_spec = build_tiny_models(tmp_path_factory.mktemp("tiny-models-no-head"), manipulation_types=())
    return Analyzer(image_spec, video_spec, video_frames=8)


@pytest.fixture(scope="session")
def real_photo(data_dir: Path) -> Path:
    return sorted((data_dir / VAL / "real").iterdir())[0]


@pytest.fixture(scope="session")
def fake_photo(data_dir: Path) -> Path:
    return sorted((data_dir / VAL / "fake").iterdir())[0]


@pytest.fixture(scope="session")
def face_free_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smooth sky-and-ground picture: plenty of texture and colour, no face."""
    from PIL import Image

    height, width = 240, 320
    rows = np.linspace(0, 1, height)[:, None]
    columns = np.linspace(0, 1, width)[None, :]
    sky = np.stack([90 + 60 * rows + 0 * columns, 150 + 50 * rows + 0 * columns, 230 - 20 * rows + 0 * columns], -1)
    picture = sky.astype(np.uint8)
    picture[int(height * 0.65) :] = (70, 120, 40)
    path = tmp_path_factory.mktemp("face-free") / "landscape.png"
    Image.fromarray(picture).save(path)
    return path
