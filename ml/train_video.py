"""Training and leave-one-group-out evaluation of the video model.

Faces of each training video are found and tracked with the scan pipeline's own detector, crop rule and
tracker (the main track, i.e. the longest, is the labelled person) and cached. The frame encoder is the
image model, frozen: its embeddings and logits feed the sequence head, which is trained on many short clips
drawn at several frame spacings (a scan samples frames evenly, so the spacing depends on the video's length).

Figures are only reported on whole videos that the sequence head did not train on: every video is held
out together with the videos that share its source footage (a real FF++ sequence and the fakes made from
it, or Celeb-DF clips of the same person), so the head cannot recognise a held-out scene it saw with the
other label.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.datasets import VideoFaces, cache_video_faces
from ml.faces import (
    evenly_spaced_indices,
)
from ml.image_model import ImageModel, feature_model
from ml.metrics import binary_report, choose_threshold, choose_uncertain_band, fit_platt, log_loss, sigmoid
from ml.video_model import VideoModel, build_sequence_head, bundle_video_model, sequence_features

Progress = Callable[[str], None]


def scan_like_positions(length: int, frames: int) -> np.ndarray:
    """Positions (in a video's cached frames) a scan sampling `frames` frames evenly would roughly read."""
    return np.asarray(evenly_spaced_indices(length, frames), dtype=np.int64)


def make_clips(
    videos: list[VideoFaces],
    *,
    clip_len: int,
    clips_per_video: int,
    strides: tuple[int, ...],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random clips of `clip_len` frames at a random spacing, `clips_per_video` from every video.

    Returns features (clips x clip_len x F), labels and per-clip sample weights that give both classes equal
    total weight.
    """
    features, labels = [], []
    for video in videos:
        length = len(video.frame_indices)
        if length == 0:
            continue
        for _ in range(clips_per_video):
            stride = int(rng.choice([s for s in strides if (clip_len - 1) * s < length] or [1]))
            span = (clip_len - 1) * stride
            if span >= length:
                positions = np.linspace(0, length - 1, clip_len).round().astype(int)
            else:
                start = int(rng.integers(0, length - span))
                positions = start + stride * np.arange(clip_len)
            features.append(sequence_features(video.embeddings[positions], video.logits[positions]))
            labels.append(video.label)
    labels_array = np.asarray(labels, dtype=np.float32)
    positives = max(1.0, labels_array.sum())
    negatives = max(1.0, len(labels_array) - labels_array.sum())
    weights = np.where(labels_array > 0.5, len(labels_array) / (2 * positives), len(labels_array) / (2 * negatives))
    return np.stack(features).astype(np.float32), labels_array, weights.astype(np.float32)


def train_sequence_head(
    videos: list[VideoFaces],
    *,
    clip_len: int,
    epochs: int,
    seed: int,
    units: int = 32,
    clips_per_video: int = 240,
    strides: tuple[int, ...] = (1, 2, 3, 5, 8),
):
    """A sequence head trained on clips of `videos` (embeddings and logits must be filled in)."""
    import keras

    rng = np.random.default_rng(seed)
    features, labels, weights = make_clips(
        videos, clip_len=clip_len, clips_per_video=clips_per_video, strides=strides, rng=rng
    )
    head = build_sequence_head(feature_dim=features.shape[-1], units=units, seed=seed)
    head.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    head.fit(features, labels, sample_weight=weights, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    return head


@dataclass
class VideoTrainingResult:
    weights_path: Path
    settings: dict
    metrics: dict
    per_video: list[dict]
    seconds: float


def _score_held_out(model: VideoModel, video: VideoFaces, frames: int) -> tuple[float, float]:
    """Raw mean sequence logit and calibrated trimmed-mean frame logit, on scan-like sampled frames."""
    positions = scan_like_positions(len(video.frame_indices), frames)
    clip_logits = model.sequence_logits(video.embeddings[positions], video.logits[positions])
    return float(np.mean(clip_logits)), model.aggregate_logit(video.logits[positions])


def train_video_model(
    *,
    image_weights: Path,
    image_settings: dict,
    data_dirs: list[Path],
    cache_dir: Path,
    out_dir: Path,
    epochs: int = 12,
    seed: int = 0,
    clip_len: int = 8,
    frames: int = 32,
    max_frames: int = 160,
    units: int = 32,
    clips_per_video: int = 240,
    progress: Progress | None = None,
) -> VideoTrainingResult:
    """Leave-one-group-out figures, then the shipped sequence head trained on every video.

    The combination weight, the sequence calibration, the threshold and the uncertain band are all chosen
    on the out-of-fold (held-out video) scores, never on scores of videos a head trained on.
    """
    import keras

    started = time.monotonic()
    say = progress or (lambda message: None)
    image_model = ImageModel.load(image_weights, image_settings)
    rule = image_model.crop_rule
    videos = cache_video_faces(data_dirs, cache_dir, rule=rule, max_frames=max_frames, progress=say)
    usable = [video for video in videos if len(video.frame_indices) > 0]
    for video in videos:
        if len(video.frame_indices) == 0:
            say(f"{video.name}: no face tracked, left out")
    for video in usable:
        predictions = image_model.predict(video.crops)
        video.embeddings, video.logits = predictions.embeddings, predictions.logits
    base_settings = {
        "crop_rule": rule.to_dict(),
        "detector": image_settings.get("detector", {}),
        "frame_calibration": {**image_model.calibration.to_settings(), "from": "image model calibration"},
        "sequence_calibration": {"scale": 1.0, "bias": 0.0},
        "clip_len": clip_len,
        "clip_stride": max(1, clip_len // 2),
        "aggregate": {"method": "trimmed_mean_logit", "trim": 0.2},
        "combine": {"method": "logit_weighted", "sequence_weight": 0.5},
        "frames": frames,
        "image_weights_sha256": _sha256(image_weights),
    }
    encoder = feature_model(image_model.classifier)
    groups = sorted({video.group for video in usable})
    out_of_fold = []
    for fold, group in enumerate(groups, start=1):
        train_videos = [video for video in usable if video.group != group]
        held_out = [video for video in usable if video.group == group]
        if len({video.label for video in train_videos}) < 2:
            continue
        head = train_sequence_head(
            train_videos, clip_len=clip_len, epochs=epochs, seed=seed, units=units, clips_per_video=clips_per_video
        )
        model = VideoModel.from_bundle(bundle_video_model(encoder, head), base_settings)
        for video in held_out:
            sequence_logit, aggregate_logit = _score_held_out(model, video, frames)
            out_of_fold.append(
                {
                    "video": video.name,
                    "group": group,
                    "label": "fake" if video.label else "real",
                    "frames": int(min(frames, len(video.frame_indices))),
                    "sequence_logit": sequence_logit,
                    "aggregate_logit": aggregate_logit,
                }
            )
        say(f"fold {fold}/{len(groups)} ({group}): held out {', '.join(video.name for video in held_out)}")
        keras.backend.clear_session(free_memory=False)

    labels = np.asarray([1 if row["label"] == "fake" else 0 for row in out_of_fold])
    sequence_logits = np.asarray([row["sequence_logit"] for row in out_of_fold])
    aggregate_logits = np.asarray([row["aggregate_logit"] for row in out_of_fold])
    scale, bias = fit_platt(sequence_logits, labels)
    calibrated_sequence = scale * sequence_logits + bias
    weight_scores = {}
    for weight in (0.0, 0.25, 0.5, 0.75, 1.0):
        weighted = weight * calibrated_sequence + (1 - weight) * aggregate_logits
        weight_scores[weight] = log_loss(labels, sigmoid(weighted))
    sequence_weight = min(weight_scores, key=lambda weight: (round(weight_scores[weight], 6), abs(weight - 0.5)))
    weighted = sequence_weight * calibrated_sequence + (1 - sequence_weight) * aggregate_logits
    combined_scale, combined_bias = fit_platt(weighted, labels)
    combined = sigmoid(combined_scale * weighted + combined_bias)
    threshold = choose_threshold(labels, combined)
    low, high = choose_uncertain_band(labels, combined, threshold, target_accuracy=0.95)
    for row, probability, sequence_probability, aggregate_probability in zip(
        out_of_fold, combined, sigmoid(calibrated_sequence), sigmoid(aggregate_logits), strict=True
    ):
        row["sequence_probability"] = round(float(sequence_probability), 4)
        row["aggregate_probability"] = round(float(aggregate_probability), 4)
        row["fake_probability"] = round(float(probability), 4)
        row["correct"] = bool((probability >= threshold) == (row["label"] == "fake"))
        row["verdict"] = "fake" if probability >= high else "real" if probability <= low else "uncertain"
    settings = dict(base_settings)
    settings.update(
        sequence_calibration={"scale": round(scale, 6), "bias": round(bias, 6), "fitted_on": "out-of-fold videos"},
        combine={
            "method": "logit_weighted, then Platt on out-of-fold videos",
            "sequence_weight": sequence_weight,
            "scale": round(combined_scale, 6),
            "bias": round(combined_bias, 6),
        },
        threshold=threshold,
        uncertain_low=low,
        uncertain_high=high,
    )

    def subset_report(prefix: str) -> dict:
        members = [index for index, row in enumerate(out_of_fold) if row["video"].startswith(prefix)]
        if not members:
            return {}
        report = binary_report(labels[members], combined[members], threshold)
        report["correct"] = int(sum(out_of_fold[index]["correct"] for index in members))
        report["aggregate_only_correct"] = int(
            sum(((aggregate_logits[index] >= 0) == (labels[index] == 1)) for index in members)
        )
        return report

    metrics = {
        "protocol": "leave-one-group-out over source footage; figures on held-out whole videos only",
        "all": subset_report(""),
        "ffpp": subset_report("ffpp_"),
        "sequence_weight_log_loss": {str(weight): round(value, 6) for weight, value in weight_scores.items()},
        "folds": len(groups),
        "videos": len(usable),
    }
    celebdf_rows = [index for index, row in enumerate(out_of_fold) if not row["video"].startswith("ffpp_")]
    if celebdf_rows:
        metrics["celebdf"] = binary_report(labels[celebdf_rows], combined[celebdf_rows], threshold)
        metrics["celebdf"]["correct"] = int(sum(out_of_fold[index]["correct"] for index in celebdf_rows))
    say("training the shipped sequence head on every video")
    head = train_sequence_head(
        usable, clip_len=clip_len, epochs=epochs, seed=seed, units=units, clips_per_video=clips_per_video
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / "video_model.keras"
    bundle_video_model(encoder, head).save(weights_path)
    seconds = time.monotonic() - started
    metrics["training_seconds"] = round(seconds, 1)
    metrics["epochs"] = epochs
    metrics["seed"] = seed
    (out_dir / "metrics.json").write_text(
        json.dumps({"metrics": metrics, "settings": settings, "per_video": out_of_fold}, indent=2)
    )
    return VideoTrainingResult(
        weights_path=weights_path, settings=settings, metrics=metrics, per_video=out_of_fold, seconds=seconds
    )


def _sha256(path: str | os.PathLike) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
