"""`evaluate_files` reads the pipeline's typed analysis: each scored file's verdict, faces and the manipulation
type of its most suspicious face (where the model has that head)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.image_model import MANIPULATION_TYPES
from ml.pipeline import Analyzer
from ml.testing import build_tiny_models
from training.evaluation import evaluate_files


@pytest.mark.parametrize("manipulation_types", [MANIPULATION_TYPES, ()], ids=["with the head", "without it"])
def test_each_scored_file_has_its_faces_and_most_like_type(data_dir: Path, tmp_path: Path, manipulation_types):
    image_spec, _video_spec = build_tiny_models(tmp_path, manipulation_types=manipulation_types)
    val = data_dir / "images" / "stylegan-celeba" / "val"
    files = [(sorted((val / "real").iterdir())[0], 0), (sorted((val / "fake").iterdir())[0], 1)]

    summary = evaluate_files(Analyzer(image_spec), files, kind="image", root=val, name="val")

    assert summary["n"] == 2 and summary["n_errors"] == 0
    for entry in summary["files"]:
        assert entry["faces"] == 1 and entry["verdict"] in {"real", "fake", "uncertain"}
        if manipulation_types:
            assert entry["manipulation"] in MANIPULATION_TYPES
        else:
            assert entry["manipulation"] is None
