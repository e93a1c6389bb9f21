"""The training commands end to end on a handful of real images and clips, with tiny models."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from training.models import ModelVersion
from training.services import model_version_register

pytestmark = pytest.mark.training

TINY_TRAINING = ["--epochs", "1", "--widths", "4,8", "--embedding-dim", "8", "--batch-size", "4"]


def _copy_labelled(source: Path, target: Path, per_class: int) -> Path:
    for label in ("real", "fake"):
        (target / label).mkdir(parents=True)
        for path in sorted((source / label).iterdir())[:per_class]:
            shutil.copy(path, target / label / path.name)
    return target


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture(scope="module")
def tiny_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A handful of real photos, their face crops, and a tiny image model trained on them for one epoch."""
    root = tmp_path_factory.mktemp("training")
    images = _copy_labelled(data_dir / "images" / "stylegan-celeba" / "val", root / "images", per_class=4)
    crops = root / "crops"
    _run("prepare_faces", "--data", str(images), "--out", str(crops), "--size", "48")
    run = root / "run"
    _run(
        "train_image_model",
        "--train",
        str(crops),
        "--val",
        str(crops),
        "--out",
        str(run),
        "--no-register",
        *TINY_TRAINING,
    )
    return {"root": root, "images": images, "crops": crops, "run": run}


def test_prepare_faces_caches_one_crop_per_image(tiny_run: dict[str, Path]) -> None:
    index = json.loads((tiny_run["crops"] / "index.json").read_text())
    assert index["crop_rule"] == {"margin": 0.15, "size": 48}
    assert len(index["items"]) == 8
    for entry in index["items"].values():
        assert entry["status"] == "ok"
        assert Image.open(tiny_run["crops"] / entry["crop"]).size == (48, 48)
        assert len(entry["box"]) == 4 and entry["landmarks"]
    again = _run("prepare_faces", "--data", str(tiny_run["images"]), "--out", str(tiny_run["crops"]), "--size", "48")
    assert "8 reused from cache" in again


def test_training_saves_weights_metrics_and_plots(tiny_run: dict[str, Path]) -> None:
    run = tiny_run["run"]
    for name in ("image_model.keras", "metrics.json", "roc.png", "pr.png", "confusion.png", "training.png"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert {"n", "auc", "accuracy", "f1", "log_loss", "ece"} <= set(saved["metrics"])
    settings = saved["settings"]
    assert settings["uncertain_low"] <= settings["threshold"] <= settings["uncertain_high"]
    assert settings["crop_rule"]["size"] == 48 and "calibration" in settings
    assert len(saved["history"]["loss"]) == 1


@pytest.mark.django_db
def test_training_registers_and_activates_a_version(tiny_run: dict[str, Path], tmp_path: Path) -> None:
    output = _run(
        "train_image_model",
        "--train",
        str(tiny_run["crops"]),
        "--val",
        str(tiny_run["crops"]),
        "--out",
        str(tmp_path / "run"),
        "--model-version",
        "0.0.1",
        "--activate",
        *TINY_TRAINING,
    )
    version = ModelVersion.objects.get(kind="image", version="0.0.1")
    assert version.is_active
    assert version.metrics["val"]["n"] == 8
    assert (
        version.settings["threshold"]
        == json.loads((tmp_path / "run" / "metrics.json").read_text())["settings"]["threshold"]
    )
    assert "active" in output


@pytest.mark.django_db
def test_a_self_blended_frame_encoder_trains_on_every_face_and_is_never_registered(
    tiny_run: dict[str, Path], tmp_path: Path
) -> None:
    output = _run(
        "train_image_model",
        "--self-blended",
        "--train",
        str(tiny_run["crops"]),
        "--val",
        str(tiny_run["crops"]),
        "--out",
        str(tmp_path / "encoder"),
        *TINY_TRAINING,
    )

    saved = json.loads((tmp_path / "encoder" / "metrics.json").read_text())
    assert saved["metrics"]["fakes"] == "self-blended copies of the crops"
    assert saved["metrics"]["train_crops"] == 8  # all eight faces, real and generated, as unblended faces
    assert saved["metrics"]["n"] == 16  # val: each face as it is and self-blended
    assert (tmp_path / "encoder" / "image_model.keras").is_file()
    assert not ModelVersion.objects.exists()
    assert f"--image-run {tmp_path / 'encoder'}" in output


def test_evaluate_model_json_prints_one_object_with_the_figures(tiny_run: dict[str, Path], capfd) -> None:
    out = io.StringIO()
    call_command(
        "evaluate_model",
        "--kind",
        "image",
        "--data",
        str(tiny_run["images"]),
        "--run",
        str(tiny_run["run"]),
        "--json",
        stdout=out,
    )
    report = json.loads(out.getvalue())
    assert {"n", "auc", "accuracy", "precision", "recall", "f1", "log_loss", "ece", "files"} <= set(report)
    assert report["n"] + report["n_errors"] == len(report["files"]) == 8
    assert {"path", "label", "fake_probability", "verdict", "error"} <= set(report["files"][0])
    assert capfd.readouterr().out == ""  # nothing else reached the real stdout


@pytest.mark.django_db
def test_evaluate_model_record_stores_the_figures_on_the_version_for_the_admin(tiny_run: dict[str, Path]) -> None:
    run_metrics = json.loads((tiny_run["run"] / "metrics.json").read_text())
    version = model_version_register(
        kind="image",
        name="candidate",
        version="0.0.2",
        weights_path=tiny_run["run"] / "image_model.keras",
        settings=run_metrics["settings"],
        metrics={"training": {"auc": 0.5}},
    )
    out = io.StringIO()

    call_command(
        "evaluate_model", "--kind", "image", "--data", str(tiny_run["images"]), "--version", "candidate@0.0.2",
        "--record", "--json", stdout=out,
    )  # fmt: skip

    printed = json.loads(out.getvalue())
    version.refresh_from_db()
    recorded = version.metrics[f"evaluate:{tiny_run['images'].name}"]
    assert recorded == {key: value for key, value in printed.items() if key != "files"}
    assert recorded["n"] + recorded["n_errors"] == 8
    assert version.metrics["training"] == {"auc": 0.5}  # other sections are kept


def test_evaluate_model_refuses_to_record_an_unregistered_run(tiny_run: dict[str, Path]) -> None:
    with pytest.raises(CommandError, match="--record stores figures on a registered version"):
        call_command(
            "evaluate_model", "--kind", "image", "--data", str(tiny_run["images"]), "--run", str(tiny_run["run"]),
            "--record", stdout=io.StringIO(),
        )  # fmt: skip


def test_evaluate_model_counts_faceless_images_as_errors(tiny_run: dict[str, Path], tmp_path: Path) -> None:
    data = _copy_labelled(tiny_run["images"], tmp_path / "data", per_class=1)
    Image.new("RGB", (200, 160), (90, 160, 220)).save(data / "real" / "sky.png")
    out = io.StringIO()
    call_command(
        "evaluate_model", "--kind", "image", "--data", str(data), "--run", str(tiny_run["run"]), "--json", stdout=out
    )
    report = json.loads(out.getvalue())
    assert report["n"] == 2 and report["n_errors"] == 1
    [error] = [entry for entry in report["files"] if entry["error"]]
    assert error["path"] == "real/sky.png" and error["error"] == "no face found"


def test_video_training_reports_held_out_videos(tiny_run: dict[str, Path], data_dir: Path) -> None:
    clips = _copy_labelled(data_dir / "videos" / "celebdf", tiny_run["root"] / "clips", per_class=2)
    run = tiny_run["root"] / "video-run"
    output = _run(
        "train_video_model",
        "--data",
        str(clips),
        "--image-run",
        str(tiny_run["run"]),
        "--cache",
        str(tiny_run["root"] / "video-cache"),
        "--out",
        str(run),
        "--max-frames",
        "8",
        "--frames",
        "8",
        "--clip-len",
        "4",
        "--epochs",
        "1",
        "--clips-per-video",
        "8",
        "--units",
        "4",
        "--no-register",
    )
    saved = json.loads((run / "metrics.json").read_text())
    assert len(saved["per_video"]) == 4
    # Groups are the people a clip shows (ml.sources.video_groups), named by identity whatever the folder.
    assert {row["group"] for row in saved["per_video"]} == {
        "celebdf-youtube:00279",
        "celebdf:id21",
        "celebdf:id0",
        "celebdf:id10",
    }
    assert (run / "video_model.keras").is_file() and (run / "roc.png").is_file()
    assert "held-out" in output


def test_reencode_images_makes_one_size_and_quality(tiny_run: dict[str, Path], tmp_path: Path) -> None:
    _run(
        "reencode_images",
        "--src",
        str(tiny_run["images"]),
        "--out",
        str(tmp_path / "copy"),
        "--size",
        "64",
        "--quality",
        "70",
    )
    copies = sorted((tmp_path / "copy").rglob("*.jpg"))
    assert len(copies) == 8
    assert {Image.open(path).size for path in copies} == {(64, 64)}


@pytest.fixture(scope="module")
def tiny_sources(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A miniature shared data folder (a few files of two image sources and four Celeb-DF clips), cropped."""
    root = tmp_path_factory.mktemp("sources")
    data = root / "data"
    _copy_labelled(data_dir / "images" / "sdfd-ffhq", data / "images" / "sdfd-ffhq", per_class=12)
    dfdc = _copy_labelled(data_dir / "images" / "dfdc-faces", data / "images" / "dfdc-faces", per_class=20)
    kept = {f"{path.parent.name}/{path.name}" for path in dfdc.rglob("*.jpg")}
    metadata = (data_dir / "images" / "dfdc-faces" / "metadata.csv").read_text().splitlines()
    (dfdc / "metadata.csv").write_text(
        "\n".join([metadata[0], *(line for line in metadata[1:] if line.split(",")[0] in kept)]) + "\n"
    )
    _copy_labelled(data_dir / "videos" / "celebdf", data / "videos" / "celebdf", per_class=2)
    for part in ("train", "val"):
        stylegan = data_dir / "images" / "stylegan-celeba" / part
        _copy_labelled(stylegan, data / "images" / "stylegan-celeba" / part, per_class=4)
    cache = root / "cache"
    output = _run(
        "prepare_training_data",
        "--data",
        str(data),
        "--out",
        str(cache),
        "--sources",
        "stylegan-celeba,sdfd-ffhq,dfdc-faces,celebdf",
        "--size",
        "48",
        "--max-frames",
        "6",
    )
    assert "videos: 4 videos" in output
    return {"root": root, "data": data, "cache": cache}


TINY_V2 = [
    "--backbone",
    "separable_cnn",
    "--widths",
    "4,8",
    "--embedding-dim",
    "8",
    "--input-size",
    "48",
    "--batch-size",
    "8",
]


def _train_on_tiny_sources(tiny_sources: dict[str, Path], run: Path, *options: str) -> str:
    """`train_image_model` by the v2 recipe on the miniature sdfd-ffhq and dfdc-faces, into `run`."""
    return _run(
        "train_image_model",
        "--sources",
        "sdfd-ffhq,dfdc-faces",
        "--data",
        str(tiny_sources["data"]),
        "--cache",
        str(tiny_sources["cache"]),
        *options,
        "--out",
        str(run),
    )


def _train_tiny_on_photos_and_videos(tiny_sources: dict[str, Path], run: Path, *options: str, stage2_steps: int) -> str:
    """Two stage-1 steps on the miniature photos with the celebdf videos' frames held out, then `stage2_steps`
    of the cross-fitted video stage (0: none, the shipped recipe); not registered."""
    return _train_on_tiny_sources(
        tiny_sources,
        run,
        "--video-sources",
        "celebdf",
        *TINY_V2,
        "--stage1-steps",
        "2",
        "--stage2-steps",
        str(stage2_steps),
        *options,
        "--no-register",
    )


@pytest.fixture(scope="module")
def tiny_v2_run(tiny_sources: dict[str, Path], django_db_setup, django_db_blocker) -> Path:
    """A tiny image model trained by the 12-02 v2 recipe (a cross-fitted video stage, each face scored once) on
    the miniature sources (not registered)."""
    run = tiny_sources["root"] / "run-v2"
    with django_db_blocker.unblock():
        output = _train_tiny_on_photos_and_videos(tiny_sources, run, "--test-time-flip", "off", stage2_steps=1)
    assert "threshold" in output
    return run


@pytest.mark.django_db
def test_training_on_every_source_calibrates_on_the_photos_and_cross_fits_the_video_frames(tiny_v2_run: Path) -> None:
    run = tiny_v2_run
    saved = json.loads((run / "metrics.json").read_text())
    settings = saved["settings"]
    assert settings["architecture"]["backbone"] == "separable_cnn"
    assert settings["manipulation_types"] == ["face_swap", "gan", "diffusion"]
    # The photo decision is fitted on photos; the video model calibrates its own verdict on the frames.
    assert settings["calibration"]["fitted_on"] == "calibration splits of sdfd-ffhq, dfdc-faces"
    assert settings["uncertain_low"] <= settings["threshold"] <= settings["uncertain_high"]
    # One stage-2 run per fold of video groups, then one on every video; every frame scored out of fold.
    assert [name for name in saved["metrics"]["curves"] if name.startswith("stage 2")][-1] == "stage 2, every video"
    oof = np.load(run / "video_frames_oof.npz")
    assert len(oof["logits"]) == 4 * 6 and np.isfinite(oof["logits"]).all()
    assert set(oof["folds"]) == {f"fold{number}" for number in range(4)}
    assert set(saved["metrics"]["held_out"]["test_auc"]) == {"sdfd-ffhq", "dfdc-faces"}


@pytest.mark.django_db
def test_the_evaluation_report_scores_every_held_out_set_and_writes_the_cards_table(
    tiny_sources: dict[str, Path], tiny_v2_run: Path
) -> None:
    saved = json.loads((tiny_v2_run / "metrics.json").read_text())
    version = model_version_register(
        kind="image",
        name="unmask-image",
        version="2.0.0-test",
        weights_path=tiny_v2_run / "image_model.keras",
        settings=saved["settings"],
        activate=True,
    )
    video_run = tiny_sources["root"] / "video-for-report"
    _run("train_video_model", "--image-run", str(tiny_v2_run), "--out", str(video_run), "--frames", "4", "--activate")
    cards = {}
    for kind in ("image", "video"):
        cards[kind] = tiny_sources["root"] / f"MODEL_CARD_{kind}.md"
        cards[kind].write_text(
            "# Card\n\n<!-- evaluate_report:start -->\nold figures\n<!-- evaluate_report:end -->\n\nAfter.\n"
        )
    card = cards["image"]
    out = tiny_sources["root"] / "report"
    _run(
        "evaluate_report",
        "--data",
        str(tiny_sources["data"]),
        "--frames",
        str(tiny_v2_run / "video_frames_oof.npz"),
        "--out",
        str(out),
        "--card",
        str(card),
        "--video-card",
        str(cards["video"]),
        "--record",
    )
    report = json.loads((out / "report.json").read_text())
    assert [row["key"] for row in report["rows"]] == [
        "dfdc-faces:test",
        "sdfd-ffhq:test",
        "sdfd-ffhq:test@224q80",
        "stylegan-celeba:test",
        "stylegan-celeba:test@224q80",
        "dfdc-faces:test@tight-letterbox",
        "sdfd-ffhq:test@tight-letterbox",
        "stylegan-celeba:test@tight-letterbox",
    ]
    dfdc = report["rows"][0]["versions"]["unmask-image@2.0.0-test"]
    assert dfdc["n"] + dfdc["n_errors"] == dfdc["n_files"] > 0
    # The framing check scores a letterboxed copy of every file; copies never enter the pooled figures.
    letterboxed = report["rows"][5]["versions"]["unmask-image@2.0.0-test"]
    assert letterboxed["n_files"] == dfdc["n_files"]
    as_they_are = [row for row in report["rows"] if "@" not in row["key"]]
    scored = sum(row["versions"]["unmask-image@2.0.0-test"]["n"] for row in as_they_are)
    assert report["pooled"]["n"] == scored + report["frames"]["n"]
    assert report["frames"]["videos"] == 4
    # DFDC by the face's width in its frame (metadata.csv): every scored test face in exactly one band.
    bands = report["dfdc_by_face_width"]
    assert [band["band"] for band in bands] == ["0-100 px", "100-200 px", ">= 200 px"]
    assert sum(band["fakes"] + band["reals"] for band in bands) == dfdc["n"]
    assert set(report["pooled"]["by_source"]) >= {"dfdc-faces", "celebdf"}
    text = card.read_text()
    assert "old figures" not in text and "| held-out data |" in text and text.endswith("After.\n")
    assert "(`dfdc-faces:test@tight-letterbox`)" in text and "| no target |" in text
    assert "| `dfdc-faces:test` by the face's width in its video frame |" in text
    # What a reviewer is told per set: the counts of each verdict, out of the files scored.
    verdict_row = next(line for line in text.splitlines() if line.startswith("| `dfdc-faces:test` | `unmask-image"))
    cells = [cell.strip() for cell in verdict_row.strip("|").split("|")]
    fakes, reals = (sum(int(count) for count in cell.split(" / ")) for cell in cells[2:4])
    assert fakes + reals == dfdc["n"]
    assert (out / "roc.png").is_file() and (out / "report.md").read_text().startswith("Measured by")
    version.refresh_from_db()
    assert version.metrics["evaluate:dfdc-faces:test"]["n_files"] == dfdc["n_files"]
    # The video card's table: the held-out videos recomputed from the same frame scores, as training chose them.
    video_report = json.loads((out / "video-report.json").read_text())
    trained = {row["video"]: row for row in json.loads((video_run / "metrics.json").read_text())["per_video"]}
    if video_report["recomputed"]:
        for row in video_report["per_video"]:
            assert row["fake_probability"] == pytest.approx(trained[row["video"]]["fake_probability"], abs=1e-4)
        assert "| celebdf (4) |" in cards["video"].read_text()


@pytest.fixture(scope="module")
def tiny_stage1_run(tiny_sources: dict[str, Path], django_db_setup, django_db_blocker) -> Path:
    """A tiny image model trained by the shipped v2 recipe, stage 1 alone (not registered)."""
    run = tiny_sources["root"] / "run-stage1-only"
    with django_db_blocker.unblock():
        _train_tiny_on_photos_and_videos(tiny_sources, run, stage2_steps=0)
    return run


@pytest.fixture(scope="module")
def tiny_stage1_run_unflipped(
    tiny_sources: dict[str, Path], tiny_stage1_run: Path, django_db_setup, django_db_blocker
) -> Path:
    """`tiny_stage1_run` recalibrated to score each face once (`--test-time-flip off`), as 2.0.0 does."""
    run = tiny_sources["root"] / "run-stage1-only-unflipped"
    shutil.copytree(tiny_stage1_run, run)
    cache_options = ["--cache", str(tiny_sources["cache"]), "--data", str(tiny_sources["data"])]
    with django_db_blocker.unblock():
        _run("train_image_model", "--recalibrate", str(run), "--test-time-flip", "off", *cache_options)
    return run


def test_the_shipped_recipe_scores_every_face_with_its_mirror_image_and_says_so(
    tiny_sources: dict[str, Path], tiny_stage1_run: Path, tiny_stage1_run_unflipped: Path
) -> None:
    from ml.train_sources import predict_rows
    from training.crop_checks import load_model_and_crops

    flipped = json.loads((tiny_stage1_run / "metrics.json").read_text())
    assert flipped["settings"]["test_time_flip"] is True and flipped["metrics"]["config"]["test_time_flip"] is True
    once = json.loads((tiny_stage1_run_unflipped / "metrics.json").read_text())
    assert once["settings"]["test_time_flip"] is False
    classifier, pool = load_model_and_crops(
        tiny_stage1_run / "image_model.keras",
        cache=tiny_sources["cache"],
        data=tiny_sources["data"],
        sources=("sdfd-ffhq", "dfdc-faces"),
        video_sources=("celebdf",),
    )
    frames = np.flatnonzero(pool.source == "celebdf")
    saved, recalibrated = (
        np.load(run / "video_frames_oof.npz") for run in (tiny_stage1_run, tiny_stage1_run_unflipped)
    )
    # Stage 1 never saw a video, so its own scores of the frames are held out, either way round.
    np.testing.assert_allclose(
        saved["logits"], predict_rows(classifier, pool, frames, mirror=True)["logits"], atol=1e-5
    )
    np.testing.assert_allclose(recalibrated["logits"], predict_rows(classifier, pool, frames)["logits"], atol=1e-5)
    assert bool(saved["test_time_flip"]) and not bool(recalibrated["test_time_flip"])


def test_without_a_video_stage_every_frame_is_scored_by_stage_one_which_never_saw_a_video(
    tiny_stage1_run: Path,
) -> None:
    run = tiny_stage1_run
    saved = json.loads((run / "metrics.json").read_text())
    assert list(saved["metrics"]["curves"]) == ["stage1"]
    oof = np.load(run / "video_frames_oof.npz")
    assert len(oof["logits"]) == 4 * 6 and np.isfinite(oof["logits"]).all()
    assert oof["embeddings"].shape == (4 * 6, 8)
    # The frames' figure is then stage 1's own: the same model, the same frames.
    held_out = saved["metrics"]["held_out"]["video_frames_oof_auc"]
    assert held_out == saved["metrics"]["stage1_video_frames_auc"]


@pytest.mark.django_db
def test_a_run_on_every_source_registers_and_activates_with_its_decision(tiny_sources: dict[str, Path]) -> None:
    run = tiny_sources["root"] / "run-registered"
    output = _train_on_tiny_sources(
        tiny_sources,
        run,
        "--video-sources",
        "",
        *TINY_V2,
        "--stage1-steps",
        "1",
        "--model-version",
        "2.0.0-test",
        "--activate",
    )
    version = ModelVersion.objects.get(kind="image", name="unmask-image", version="2.0.0-test")
    assert version.is_active and f"model version {version} active" in output
    assert version.settings == json.loads((run / "metrics.json").read_text())["settings"]
    assert "sdfd-ffhq,dfdc-faces" in version.training_notes


@pytest.mark.django_db
def test_a_left_out_source_is_neither_trained_nor_calibrated_on_and_never_registered(
    tiny_sources: dict[str, Path],
) -> None:
    run = tiny_sources["root"] / "run-loso"
    output = _train_on_tiny_sources(
        tiny_sources,
        run,
        "--leave-out",
        "sdfd-ffhq",
        "--video-sources",
        "",
        *TINY_V2,
        "--stage1-steps",
        "1",
        "--sharpness-matching",
        "0.5",
        "--even-blend-focus",
        "--cross-blended",
        "--resynthesised-fakes",
        "--resynthesis-steps",
        "1",
    )
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["metrics"]["config"]["leave_out"] == "sdfd-ffhq"
    assert saved["metrics"]["config"]["resynthesised"] is True
    # Its one step drew its crops through the sharpness matching, the even-focus self-blends and the
    # cross-blends, each stored with the run like every option.
    assert saved["metrics"]["config"]["sharpness_matching"] == 0.5
    assert saved["metrics"]["config"]["even_blend_focus"] is True
    assert saved["metrics"]["config"]["cross_blended"] is True
    assert "cross-blended (" in output  # the stream was made, from the trained source's real faces
    assert "sdfd-ffhq" not in saved["settings"]["calibration"]["fitted_on"]
    assert "sdfd-ffhq" in saved["metrics"]["held_out"]["test_auc"]
    assert not (run / "registered.json").exists() and not ModelVersion.objects.exists()


def _pretrained_weights_or_skip() -> Path:
    from django.conf import settings as django_settings

    weights = Path(django_settings.UNMASK_WEIGHTS_DIR) / "mobilenet_v2_1.0_224_no_top.h5"
    if not weights.is_file():
        pytest.skip(f"pretrained weights not available: {weights} is missing (UNMASK_WEIGHTS_DIR)")
    return weights


def _one_pretrained_step(tiny_sources: dict[str, Path], run: Path, weights: Path, *extra: str) -> dict:
    """One stage-1 step of a pretrained backbone on the tiny sources (48 px, no video); the run's metrics.json."""
    _train_on_tiny_sources(
        tiny_sources,
        run,
        "--video-sources",
        "",
        "--input-size",
        "48",
        "--embedding-dim",
        "8",
        "--batch-size",
        "4",
        "--stage1-steps",
        "1",
        "--backbone-weights",
        str(weights),
        "--no-register",
        *extra,
    )
    return json.loads((run / "metrics.json").read_text())


def test_the_pretrained_backbone_trains_with_its_batch_norm_frozen(tiny_sources: dict[str, Path]) -> None:
    weights = _pretrained_weights_or_skip()
    import keras

    from ml.image_model import build_mobilenet_v2_model

    classifier = build_mobilenet_v2_model(backbone_weights=weights, input_size=48, embedding_dim=8)
    norms = [layer for layer in classifier.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    assert not classifier.get_layer("block_5_project").trainable and classifier.get_layer("block_6_expand").trainable
    run = tiny_sources["root"] / "run-mnv2"
    saved = _one_pretrained_step(tiny_sources, run, weights)
    assert saved["settings"]["architecture"] == {"backbone": "mobilenet_v2", "trainable_from": "block_6_expand"}
    assert (run / "image_model.keras").stat().st_size > 5_000_000


def test_the_local_backbone_scores_a_face_from_patches_it_sees_separately(tiny_sources: dict[str, Path]) -> None:
    weights = _pretrained_weights_or_skip()
    import keras

    from ml.gradcam import find_last_spatial_layer
    from ml.image_model import ImageModel, build_mobilenet_v2_local_model

    classifier = build_mobilenet_v2_local_model(backbone_weights=weights, input_size=160, embedding_dim=8)
    assert find_last_spatial_layer(classifier) == "patch_features"
    patches = keras.Model(classifier.inputs, classifier.get_layer("patch_features").output)
    crop = np.random.default_rng(0).integers(0, 256, (1, 160, 160, 3)).astype(np.float32)
    changed = crop.copy()
    changed[:, 80:, 80:] = 255 - changed[:, 80:, 80:]  # the bottom-right quarter of the face
    before, after = np.asarray(patches([crop])), np.asarray(patches([changed]))
    assert before.shape[1:3] == (20, 20)
    # A top-left patch sees none of that quarter (its field is 59 px), a bottom-right one sees little else.
    np.testing.assert_allclose(before[0, :4, :4], after[0, :4, :4], atol=1e-5)
    assert not np.allclose(before[0, 15:, 15:], after[0, 15:, 15:], atol=1e-3)

    run = tiny_sources["root"] / "run-mnv2-local"
    saved = _one_pretrained_step(tiny_sources, run, weights, "--backbone", "mobilenet_v2_local")
    assert saved["settings"]["architecture"] == {"backbone": "mobilenet_v2_local", "trainable_from": "block_3_expand"}
    model = ImageModel.load(run / "image_model.keras", saved["settings"])
    assert model.predict(np.zeros((2, 48, 48, 3), dtype=np.uint8)).probabilities.shape == (2,)


def test_shipping_a_new_version_keeps_the_earlier_ones_and_moves_the_default(tiny_v2_run: Path, tmp_path: Path) -> None:
    shipped = tmp_path / "weights"
    for version, default in (("1.0.0", True), ("2.0.0", True)):
        _run(
            "ship_model",
            "--run",
            str(tiny_v2_run),
            "--kind",
            "image",
            "--name",
            "unmask-image",
            "--model-version",
            version,
            *(["--default"] if default else []),
            "--to",
            str(shipped),
        )
    entries = json.loads((shipped / "manifest.json").read_text())["models"]
    assert [(entry["version"], entry.get("default", False)) for entry in entries] == [("1.0.0", False), ("2.0.0", True)]
    frames = np.load(shipped / "image-unmask-image-2.0.0-oof-frames.npz")
    assert "embeddings" not in frames and len(frames["logits"]) == 24


def test_the_video_model_is_chosen_on_held_out_groups_from_the_cross_fitted_frame_scores(
    tiny_v2_run: Path, tmp_path: Path
) -> None:
    from ml.calibration import LogitCalibration
    from ml.image_model import ImageModel, weights_digest
    from ml.metrics import sigmoid
    from ml.train_video_crossfit import CANDIDATES
    from ml.video_model import VideoModel, aggregate_frames

    run = tmp_path / "video-v2"
    output = _run(
        "train_video_model",
        "--image-run",
        str(tiny_v2_run),
        "--out",
        str(run),
        "--frames",
        "4",
        "--epochs",
        "1",
        "--units",
        "4",
        "--no-register",
    )
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["metrics"]["chosen"] in CANDIDATES
    assert set(saved["metrics"]["held_out_log_loss"]) == set(CANDIDATES)
    assert len(saved["per_video"]) == 4 and all(row["frames"] == 4 for row in saved["per_video"])
    assert {row["group"] for row in saved["per_video"]} == {
        "celebdf-youtube:00279",
        "celebdf:id21",
        "celebdf:id0",
        "celebdf:id10",
    }
    settings = saved["settings"]
    model = VideoModel.load(run / "video_model.keras", settings)
    frame_logits = np.array([-2.0, 0.0, 1.0, 3.0])
    score = model.score_track(np.zeros((4, 8), np.float32), frame_logits)
    if settings["combine"]["sequence_weight"] == 0:
        calibrated = LogitCalibration.from_settings(settings["frame_calibration"]).logits(frame_logits)
        aggregate = aggregate_frames(calibrated, settings["aggregate"])
        calibration = settings["aggregate_calibration"]
        expected = float(sigmoid(calibration["scale"] * aggregate + calibration["bias"]))
        assert score.fake_probability == pytest.approx(expected) and score.sequence_probability is None
    # The run records its frame encoder, so that a worker holding that image model loads no second copy.
    image_settings = json.loads((tiny_v2_run / "metrics.json").read_text())["settings"]
    image_model = ImageModel.load(tiny_v2_run / "image_model.keras", image_settings)
    assert settings["frame_encoder_digest"] == weights_digest(image_model.features)
    if settings["combine"]["sequence_weight"] == 0:
        shared = VideoModel.load(run / "video_model.keras", settings, image_model=image_model)
        assert shared.frame_encoder is image_model.features
    assert "chosen:" in output and "held-out celebdf" in output


def test_compare_runs_tabulates_each_runs_recipe_and_held_out_figures(tiny_v2_run: Path) -> None:
    table = _run("compare_runs", str(tiny_v2_run)).splitlines()
    assert table[0].startswith("| run | backbone | trained layers | augment |")
    assert "dfdc-faces test" in table[0] and "celebdf frames, unseen" in table[0]
    assert table[2].startswith(
        f"| {tiny_v2_run.name} | separable_cnn [4, 8] | all (scratch) | light | "
        "dfdc-faces x3, self-blended x2, videos x3 | 2 / 1 |"
    )


def test_compare_runs_refuses_a_folder_that_is_not_a_multi_source_run(tiny_run: dict[str, Path]) -> None:
    with pytest.raises(CommandError, match="not a train_image_model --sources run"):
        _run("compare_runs", str(tiny_run["run"]))


def test_framing_check_scores_the_test_crops_four_ways(tiny_sources: dict[str, Path], tiny_v2_run: Path) -> None:
    table = _run(
        "framing_check",
        "--weights",
        str(tiny_v2_run / "image_model.keras"),
        "--cache",
        str(tiny_sources["cache"]),
        "--data",
        str(tiny_sources["data"]),
        "--sources",
        "sdfd-ffhq,dfdc-faces",
    ).splitlines()
    assert table[2] == "| framing | sdfd-ffhq | dfdc-faces |"
    rows = [line.split("|")[1].strip() for line in table[4:]]
    assert rows == ["as cut", "bare face box", "letterboxed", "bare face box, letterboxed"]
    for line in table[4:]:
        for cell in line.strip("|").split("|")[1:]:
            assert cell.strip() == "n/a" or 0.0 <= float(cell) <= 1.0
    with pytest.raises(CommandError, match="no model file"):
        _run("framing_check", "--weights", str(tiny_sources["root"] / "missing.keras"))


def test_sharpness_check_relates_the_score_to_focus_per_source(
    tiny_sources: dict[str, Path], tiny_v2_run: Path
) -> None:
    common = ["--cache", str(tiny_sources["cache"]), "--data", str(tiny_sources["data"])]
    common += ["--sources", "sdfd-ffhq,dfdc-faces", "--video-sources", "celebdf"]
    table = _run(
        "sharpness_check",
        "--weights",
        str(tiny_v2_run / "image_model.keras"),
        "--frames",
        str(tiny_v2_run / "video_frames_oof.npz"),
        "--self-blends",
        "3",
        *common,
    ).splitlines()
    assert "video frames scored out of fold" in table[0]
    blends_at = next(number for number, line in enumerate(table) if line.startswith("Self-blends of up to 3"))
    table, blend_table = table[: blends_at - 1], table[blends_at:]
    assert [line.split("|")[1].strip() for line in table[4:]] == ["sdfd-ffhq", "dfdc-faces", "celebdf"]
    # Every source with real faces and landmarks gets its blends' focus, plain and even, as ratios and shares.
    assert len(blend_table) > 4
    for line in blend_table[4:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert 1 <= int(cells[1]) <= 3 and all(float(cell) >= 0 for cell in cells[2:])
        assert all(float(cell) <= 1 for cell in (cells[3], cells[5]))
    for line in table[4:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert all(cell == "n/a" or -1.0 <= float(cell) <= 1.0 for cell in cells[3:])
    # Frame scores of another cache are refused, not silently mixed with the model's own.
    stale = tiny_sources["root"] / "stale-frames.npz"
    saved = dict(np.load(tiny_v2_run / "video_frames_oof.npz"))
    np.savez(stale, **{**saved, "names": np.asarray([f"other/{name}" for name in saved["names"]])})
    with pytest.raises(CommandError, match="has no score for"):
        _run("sharpness_check", "--weights", str(tiny_v2_run / "image_model.keras"), "--frames", str(stale), *common)


def test_calibration_check_sets_the_per_kind_maps_beside_the_shipped_one(
    tiny_sources: dict[str, Path], tiny_v2_run: Path
) -> None:
    common = ["--cache", str(tiny_sources["cache"]), "--data", str(tiny_sources["data"])]
    common += ["--sources", "sdfd-ffhq,dfdc-faces", "--video-sources", "celebdf"]

    table = _run("calibration_check", "--weights", str(tiny_v2_run / "image_model.keras"), "--mirror", *common)
    lines = table.splitlines()

    assert "each scored with its mirror image" in lines[0]
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == [
        "held-out",
        "faces (fake)",
        "one map (shipped)",
        "one map per kind, hard",
        "one map per kind, soft",
    ]
    assert [line.split("|")[1].strip() for line in lines[4:]] == [
        "sdfd-ffhq",
        "dfdc-faces",
        "celebdf",
        "all held-out (ECE)",
    ]
    # Every cell of a source is "ECE / reals called fake / fakes called fake", each a share.
    for line in lines[4:-1]:
        for cell in line.strip("|").split("|")[2:]:
            assert all(0.0 <= float(value) <= 1.0 for value in cell.split(" / "))


def test_ensemble_check_compares_runs_and_their_mean(tiny_sources: dict[str, Path], tiny_v2_run: Path) -> None:
    common = ["--cache", str(tiny_sources["cache"]), "--data", str(tiny_sources["data"])]
    common += ["--sources", "sdfd-ffhq,dfdc-faces", "--video-sources", "celebdf"]
    weights, frames = str(tiny_v2_run / "image_model.keras"), str(tiny_v2_run / "video_frames_oof.npz")
    # The same run twice: its mean logit is its own, so every cell of the mean equals the run's, and the two
    # agree perfectly wherever a column has two classes.
    table = _run("ensemble_check", "--weights", weights, weights, "--frames", frames, frames, *common).splitlines()
    header = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert header == ["run", "sdfd-ffhq test", "dfdc-faces test", "frames out of fold, all", "celebdf frames"]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")[1:]] for line in table[4:]}
    assert list(rows) == [weights, "mean logit of the 2", "score agreement of the first two (Spearman)"]
    assert rows[weights] == rows["mean logit of the 2"]
    assert all(cell == "n/a" or 0.0 <= float(cell) <= 1.0 for cell in rows[weights])
    assert all(cell in ("n/a", "1.000") for cell in rows["score agreement of the first two (Spearman)"])
    with pytest.raises(CommandError, match="at least two"):
        _run("ensemble_check", "--weights", weights, *common)
    # The cross-fitted run's frame scores are its fold models': its mirrored frames have no held-out score.
    with pytest.raises(CommandError, match="cannot be scored held out"):
        _run("ensemble_check", "--weights", weights, "--frames", frames, "--mirror", *common)
    with pytest.raises(CommandError, match="one per run"):
        _run("ensemble_check", "--weights", weights, weights, "--frames", frames, *common)
    with pytest.raises(CommandError, match="no model file"):
        _run("ensemble_check", "--weights", weights, str(tiny_sources["root"] / "missing.keras"), *common)


def test_ensemble_check_mirror_scores_each_face_both_ways_and_their_mean(
    tiny_sources: dict[str, Path], tiny_stage1_run: Path, tiny_stage1_run_unflipped: Path
) -> None:
    common = ["--cache", str(tiny_sources["cache"]), "--data", str(tiny_sources["data"])]
    common += ["--sources", "sdfd-ffhq,dfdc-faces", "--video-sources", "celebdf"]
    # A run that flips already: --mirror has nothing to add.
    flipping = ["--weights", str(tiny_stage1_run / "image_model.keras")]
    with pytest.raises(CommandError, match="already scores every face with its mirror image"):
        _run(
            "ensemble_check", *flipping, "--frames", str(tiny_stage1_run / "video_frames_oof.npz"), "--mirror", *common
        )
    run = tiny_stage1_run_unflipped
    weights, frames = str(run / "image_model.keras"), str(run / "video_frames_oof.npz")
    # Stage 1 alone scored the frames itself, so one run is enough: as they are, mirrored, and the mean.
    table = _run("ensemble_check", "--weights", weights, "--frames", frames, "--mirror", *common).splitlines()
    assert "each face as it is and mirrored" in table[0]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")[1:]] for line in table[4:]}
    assert list(rows) == [
        weights,
        f"{weights}, mirrored",
        f"{weights}, mean of it and its mirror",
        "score agreement of the first two (Spearman)",
    ]
    # The plain view is what the run saved: the same frame figure as its metrics.json.
    saved = json.loads((run / "metrics.json").read_text())["metrics"]["held_out"]
    celebdf_frames = rows[weights][3]
    expected = saved["video_frames_oof_auc"]["celebdf"]
    if expected is None:
        assert celebdf_frames == "n/a"
    else:
        assert float(celebdf_frames) == pytest.approx(expected, abs=1e-3)
    for name in (f"{weights}, mirrored", f"{weights}, mean of it and its mirror"):
        assert all(cell == "n/a" or 0.0 <= float(cell) <= 1.0 for cell in rows[name])
    # "Mirrored" is the model's own score of each test crop flipped left to right (its width axis), computed
    # here beside the command: the DFDC column is the ROC-AUC of those scores.
    from ml.metrics import roc_auc
    from ml.train_sources import predict_rows
    from training.crop_checks import load_model_and_crops

    classifier, pool = load_model_and_crops(
        Path(weights), cache=tiny_sources["cache"], data=tiny_sources["data"], sources=("sdfd-ffhq", "dfdc-faces")
    )
    dfdc = np.flatnonzero((pool.split == "test") & (pool.source == "dfdc-faces"))
    flipped = predict_rows(classifier, replace(pool, images=np.flip(pool.images, axis=2)), dfdc)["logits"]
    expected = roc_auc(pool.labels[dfdc], flipped)
    assert rows[f"{weights}, mirrored"][1] == ("n/a" if expected is None else f"{expected:.3f}")
    assert all(
        cell == "n/a" or -1.0 <= float(cell) <= 1.0 for cell in rows["score agreement of the first two (Spearman)"]
    )


def test_probe_check_reads_frozen_features_with_and_without_each_source(
    tiny_sources: dict[str, Path], tmp_path: Path
) -> None:
    common = ["--cache", str(tiny_sources["cache"]), "--data", str(tiny_sources["data"]), "--input-size", "48"]
    common += ["--sources", "sdfd-ffhq,dfdc-faces", "--video-sources", "celebdf", "--layers", "block_3_expand_relu"]
    common += ["--backbone-weights", str(_pretrained_weights_or_skip()), "--features-cache", str(tmp_path)]
    output = _run("probe_check", "--video-folds", *common).splitlines()
    # One block's mean and spread: 144 channels, twice.
    assert output[0].startswith("features: 288 per face")
    header = [cell.strip() for cell in output[1].strip("|").split("|")]
    assert header == ["trained on", "L2", "sdfd-ffhq test", "dfdc-faces test", "frames, all", "celebdf frames"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in output[3:]]
    assert [row[0] for row in rows][:3] == [
        "all sources",
        "without sdfd-ffhq (bold: left out)",
        "without dfdc-faces (bold: left out)",
    ]
    assert rows[3][0].startswith("all sources and the other folds' video frames")
    assert all(float(strength) in (1e-3, 1e-2, 1e-1, 1.0) for strength in rows[0][1].split("/"))
    # The source left out is the one cell set in bold on its row.
    assert rows[1][2].startswith("**") and rows[2][3].startswith("**") and not rows[1][3].startswith("**")
    for row in rows:
        for cell in row[2:]:
            assert cell == "n/a" or 0.0 <= float(cell.strip("*")) <= 1.0
    # The features are kept: a second run refits without extracting them again, and gives the same table.
    cached = sorted(path.name for path in tmp_path.rglob("*.npz"))
    assert cached == ["pool.npz", "self-blends-1-seed0.npz"]
    assert _run("probe_check", "--video-folds", *common).splitlines()[1:] == output[1:]
    # Without self-blends the probes train on the sources' own fakes alone (no blends made or cached).
    without_blends = _run("probe_check", *common, "--self-blends", "0").splitlines()
    assert [line.split("|")[1].strip() for line in without_blends[3:]] == [row[0] for row in rows[:3]]
    assert sorted(path.name for path in tmp_path.rglob("*.npz")) == cached
    with pytest.raises(CommandError, match="no backbone weights"):
        _run("probe_check", *common, "--backbone-weights", str(tmp_path / "missing.h5"))
