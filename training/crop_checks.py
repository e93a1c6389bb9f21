"""What the checks on the cached crops (`framing_check`, `sharpness_check`, `ensemble_check`, `probe_check`) share:
their arguments, a trained image model, and the crops `prepare_training_data` cached for the named sources, cut at
that model's input size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings as django_settings
from django.core.management.base import CommandError, CommandParser


def add_crop_arguments(parser: CommandParser, *, video_sources: bool = True) -> None:
    """--cache, --data, --sources and (with `video_sources`) --video-sources: where the cached crops are, and of
    which sources."""
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(django_settings.VAR_DIR) / "ml" / "sources",
        help="prepare_training_data's crop cache",
    )
    parser.add_argument("--data", type=Path, default=Path(django_settings.UNMASK_DATA_DIR), help="shared data")
    parser.add_argument("--sources", default="stylegan-celeba,sdfd-ffhq,dfdc-faces", help="image sources")
    if video_sources:
        parser.add_argument("--video-sources", default="ffpp,celebdf,celebdf-full", help="video sources")


def source_names(text: str) -> tuple[str, ...]:
    """A comma-separated list of source names, as the commands take it."""
    return tuple(name for name in text.split(",") if name)


def load_classifier(weights: Path):
    """The Keras classifier in `weights`, or a CommandError where there is no such file."""
    from ml.image_model import load_keras_model

    if not weights.is_file():
        raise CommandError(f"no model file at {weights}")
    return load_keras_model(weights)


def load_model_and_crops(
    weights: Path, *, cache: Path, data: Path, sources: tuple[str, ...], video_sources: tuple[str, ...] = ()
):
    """(the Keras classifier in `weights`, the `CropPool` of `sources` and `video_sources`), or a CommandError
    that says what is missing."""
    from ml.sources import SOURCES
    from ml.train_sources import SourceTrainingConfig, load_crop_pool

    unknown = sorted(set(sources + video_sources) - set(SOURCES))
    if unknown or not sources + video_sources:
        raise CommandError(f"unknown or no sources ({', '.join(unknown)}); known: {', '.join(SOURCES)}")
    classifier = load_classifier(weights)
    size = int(classifier.inputs[0].shape[1])
    config = SourceTrainingConfig(sources=sources, video_sources=video_sources, input_size=size)
    try:
        pool = load_crop_pool(cache, config, data_dir=data)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(f"{exc} (run prepare_training_data --size {size} first)") from exc
    return classifier, pool


def model_and_crops_of(options: dict) -> tuple:
    """`load_model_and_crops` for a check's parsed options (--weights and those `add_crop_arguments` adds):
    (the classifier, the crop pool, the image source names, the video source names)."""
    sources, video_sources = source_names(options["sources"]), source_names(options.get("video_sources", ""))
    classifier, pool = load_model_and_crops(
        options["weights"], cache=options["cache"], data=options["data"], sources=sources, video_sources=video_sources
    )
    return classifier, pool, sources, video_sources


def _frame_scores(path: Path):
    """A run's `video_frames_oof.npz`, opened; CommandError where there is none."""
    if not path.is_file():
        raise CommandError(f"no frame scores at {path}")
    return np.load(path, allow_pickle=False)


def out_of_fold_logits(path: Path, names: list[str]) -> np.ndarray:
    """The out-of-fold logit in `path` (a run's `video_frames_oof.npz`) of every frame in `names`, in order."""
    frames = _frame_scores(path)
    by_name = dict(zip(frames["names"].astype(str).tolist(), frames["logits"].tolist(), strict=True))
    missing = [name for name in names if name not in by_name]
    if missing:
        raise CommandError(f"{path} has no score for {missing[0]} (and {len(missing) - 1} more): another cache's")
    return np.asarray([by_name[name] for name in names])


def frames_flipped(path: Path) -> bool:
    """Whether the frame scores in `path` are each the mean of a face and its mirror image (a run with
    `test_time_flip`), so that a check sets the run's own scores of other crops beside them the same way."""
    frames = _frame_scores(path)
    return bool(frames["test_time_flip"]) if "test_time_flip" in frames.files else False
