"""Training the video model on cross-fitted frame scores: how a person's frames become one verdict, chosen on
held-out videos.

The image model's training run (`ml.train_sources`) scored every frame of every training video with a model
that never saw that video's group (`video_frames_oof.npz`). So each video's frame scores here are what the
shipped frame encoder would give a video it has never seen, and every figure below is out-of-fold twice over:
the frames were scored by a fold model that did not train on the video's group, and the combination is
calibrated (and the sequence head trained) leaving each group out in turn.

Candidates, simplest first (`CANDIDATES`): robust aggregates of the calibrated frame logits (mean, trimmed mean,
mean of the top quarter, and N-of-M confirmation: the share of frames over the frame threshold), the sequence
head (a GRU over the frames' features) alone, and the best aggregate averaged with the sequence head. The one
with the lowest held-out log-loss is shipped; a later one must beat an earlier one by more than
`LOG_LOSS_MARGIN` to be chosen, so the sequence head only ships where it clearly helps.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.calibration import LogitCalibration
from ml.datasets import VideoFaces
from ml.faces import evenly_spaced_indices
from ml.image_model import ImageModel, weights_digest
from ml.metrics import (
    binary_report,
    choose_threshold_capped,
    choose_uncertain_band,
    fit_platt,
    log_loss,
    logit,
    sigmoid,
)
from ml.video_model import AGGREGATES, aggregate_frames, bundle_video_model, clip_logits

Progress = Callable[[str], None]
AGGREGATE_CANDIDATES = ("mean_logit", "trimmed_mean_logit", "top_quarter_logit", "share_over_threshold")
CANDIDATES = (*AGGREGATE_CANDIDATES, "sequence_head", "aggregate_and_sequence")
LOG_LOSS_MARGIN = 0.01
# At most this share of the real videos called fake at the threshold (the card's target: 1 in 10).
MAX_REAL_VIDEOS_FLAGGED = 0.1
CLIP_LEN, CLIP_STRIDE = 8, 4


@dataclass
class VideoScores:
    """One training video's main person as the cross-fitted image models scored it, frames in time order."""

    unit: str  # "<source>/<file name>"
    label: int
    group: str
    fold: str
    frame_indices: np.ndarray
    logits: np.ndarray
    embeddings: np.ndarray

    @property
    def source(self) -> str:
        return self.unit.split("/", 1)[0]

    def scan_like(self, frames: int) -> VideoScores:
        """The frames a scan sampling `frames` evenly would read (of the cached, evenly spaced ones)."""
        positions = np.asarray(evenly_spaced_indices(len(self.frame_indices), frames), dtype=np.int64)
        return VideoScores(
            unit=self.unit,
            label=self.label,
            group=self.group,
            fold=self.fold,
            frame_indices=self.frame_indices[positions],
            logits=self.logits[positions],
            embeddings=self.embeddings[positions],
        )


def load_frame_scores(image_run: Path) -> list[VideoScores]:
    """Every video of `image_run/video_frames_oof.npz`, its frames in time order."""
    path = image_run / "video_frames_oof.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: train the image model with video sources and cross-fitting (train_image_model "
            "--sources ... without --no-cross-fit) first"
        )
    saved = np.load(path, allow_pickle=False)
    units = saved["units"].astype(str)
    frame_numbers = np.asarray([int(name.rsplit("#", 1)[1]) for name in saved["names"].astype(str)])
    videos = []
    for unit in sorted(set(units.tolist())):
        members = np.flatnonzero(units == unit)
        members = members[np.argsort(frame_numbers[members], kind="stable")]
        videos.append(
            VideoScores(
                unit=unit,
                label=int(saved["labels"][members[0]]),
                group=str(saved["groups"][members[0]]),
                fold=str(saved["folds"][members[0]]),
                frame_indices=frame_numbers[members],
                logits=saved["logits"][members].astype(np.float64),
                embeddings=saved["embeddings"][members].astype(np.float32),
            )
        )
    return videos


def aggregate_options(method: str, image_settings: dict) -> dict:
    """The settings an aggregate needs: N-of-M compares each frame with the image model's threshold."""
    options: dict = {"method": method}
    if method == "trimmed_mean_logit":
        options["trim"] = 0.2
    if method == "share_over_threshold":
        options["frame_logit_cut"] = round(float(logit(float(image_settings.get("threshold", 0.5)))), 6)
    return options


def held_out_platt(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Calibrated probabilities where each group's are from a Platt fit on the other groups only."""
    probabilities = np.zeros(len(scores))
    for group in sorted(set(groups.tolist())):
        held = groups == group
        if len(set(labels[~held].tolist())) < 2:
            probabilities[held] = labels[~held].mean() if (~held).any() else 0.5
            continue
        scale, bias = fit_platt(scores[~held], labels[~held])
        probabilities[held] = sigmoid(scale * scores[held] + bias)
    return probabilities


def _as_video_faces(videos: list[VideoScores]) -> list[VideoFaces]:
    """The shape `ml.train_video`'s clip sampler reads (no pixels needed: embeddings and logits only)."""
    return [
        VideoFaces(
            name=video.unit,
            label=video.label,
            group=video.group,
            frame_indices=video.frame_indices,
            crops=np.zeros((0, 1, 1, 3), dtype=np.uint8),
            landmarks=np.zeros((0, 5, 2), dtype=np.float32),
            embeddings=video.embeddings,
            logits=video.logits,
        )
        for video in videos
    ]


def held_out_sequence_scores(
    cached: list[VideoScores], sampled: list[VideoScores], *, seed: int, epochs: int, units: int, progress: Progress
) -> np.ndarray:
    """Mean clip logit of the sequence head per video, each from a head trained without the video's group."""
    import keras

    from ml.train_video import train_sequence_head

    scores = np.zeros(len(sampled))
    groups = np.asarray([video.group for video in sampled])
    for number, group in enumerate(sorted(set(groups.tolist())), start=1):
        train = [video for video in cached if video.group != group]
        if len({video.label for video in train}) < 2:
            continue
        head = train_sequence_head(_as_video_faces(train), clip_len=CLIP_LEN, epochs=epochs, seed=seed, units=units)
        for position in np.flatnonzero(groups == group):
            video = sampled[position]
            logits = clip_logits(head, video.embeddings, video.logits, clip_len=CLIP_LEN, stride=CLIP_STRIDE)
            scores[position] = float(np.mean(logits))
        progress(f"sequence head, group {number}: {group} held out")
        keras.backend.clear_session(free_memory=False)
    return scores


@dataclass
class CrossFitVideoResult:
    weights_path: Path
    settings: dict
    metrics: dict
    per_video: list[dict]
    seconds: float


def train_video_from_frame_scores(
    *,
    image_run: Path,
    out_dir: Path,
    frames: int = 32,
    seed: int = 0,
    sequence_epochs: int = 6,
    sequence_units: int = 16,
    progress: Progress | None = None,
) -> CrossFitVideoResult:
    """Choose, calibrate and save the video model from the image run's out-of-fold frame scores."""
    started = time.monotonic()
    say = progress or (lambda message: None)
    image_settings = json.loads((image_run / "metrics.json").read_text())["settings"]
    cached = load_frame_scores(image_run)
    sampled = [video.scan_like(frames) for video in cached]
    labels = np.asarray([video.label for video in sampled])
    groups = np.asarray([video.group for video in sampled])
    sources = np.asarray([video.source for video in sampled])
    frame_calibration = LogitCalibration.from_settings(image_settings["calibration"])
    say(f"{len(sampled)} videos ({int(labels.sum())} fake) in {len(set(groups.tolist()))} groups, {frames} frames each")

    raw: dict[str, np.ndarray] = {}
    for method in AGGREGATE_CANDIDATES:
        options = aggregate_options(method, image_settings)
        raw[method] = np.asarray(
            [aggregate_frames(frame_calibration.logits(video.logits), options) for video in sampled]
        )
    raw["sequence_head"] = held_out_sequence_scores(
        cached, sampled, seed=seed, epochs=sequence_epochs, units=sequence_units, progress=say
    )
    held_out = {name: held_out_platt(raw[name], labels, groups) for name in raw}
    losses = {name: log_loss(labels, held_out[name]) for name in held_out}
    best_aggregate = min(AGGREGATE_CANDIDATES, key=lambda name: losses[name])
    # The best aggregate and the sequence head, averaged in (held-out calibrated) logit space.
    mixed = 0.5 * logit(held_out[best_aggregate]) + 0.5 * logit(held_out["sequence_head"])
    held_out["aggregate_and_sequence"] = held_out_platt(mixed, labels, groups)
    raw["aggregate_and_sequence"] = mixed
    losses["aggregate_and_sequence"] = log_loss(labels, held_out["aggregate_and_sequence"])
    chosen = CANDIDATES[0]
    for name in CANDIDATES[1:]:
        if losses[name] < losses[chosen] - LOG_LOSS_MARGIN:
            chosen = name
    say("held-out log-loss: " + ", ".join(f"{name} {losses[name]:.4f}" for name in CANDIDATES) + f"; chosen: {chosen}")

    probabilities = held_out[chosen]
    threshold = choose_threshold_capped(
        labels, probabilities, np.full(len(labels), "videos"), max_false_positive_rate=MAX_REAL_VIDEOS_FLAGGED
    )
    low, high = choose_uncertain_band(labels, probabilities, threshold, target_accuracy=0.9)
    settings = _settings(
        image_run=image_run,
        image_settings=image_settings,
        chosen=chosen,
        best_aggregate=best_aggregate,
        raw=raw,
        labels=labels,
        frames=frames,
        threshold=threshold,
        band=(low, high),
    )
    head = None
    if chosen in ("sequence_head", "aggregate_and_sequence"):
        from ml.train_video import train_sequence_head

        head = train_sequence_head(
            _as_video_faces(cached), clip_len=CLIP_LEN, epochs=sequence_epochs, seed=seed, units=sequence_units
        )
    image_model = ImageModel.load(image_run / "image_model.keras", image_settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / "video_model.keras"
    bundle_video_model(image_model.features, head).save(weights_path)
    # Lets a worker that holds this image model use it as the frame encoder (`VideoModel.load`).
    settings["frame_encoder_digest"] = weights_digest(image_model.features)

    per_video = []
    for position, video in enumerate(sampled):
        probability = float(probabilities[position])
        per_video.append(
            {
                "video": video.unit,
                "source": video.source,
                "group": video.group,
                "fold": video.fold,
                "label": "fake" if video.label else "real",
                "frames": len(video.frame_indices),
                "fake_probability": round(probability, 4),
                "candidates": {name: round(float(held_out[name][position]), 4) for name in CANDIDATES},
                "frames_over_threshold": int(
                    (frame_calibration.probabilities(video.logits) >= float(image_settings["threshold"])).sum()
                ),
                "correct": bool((probability >= threshold) == (video.label == 1)),
                "verdict": "fake" if probability >= high else "real" if probability <= low else "uncertain",
            }
        )
    metrics = {
        "protocol": "frames scored out-of-fold by the image run's cross-fitted models; combination calibrated "
        "(and the sequence head trained) leaving each video group out; scan-like sampling of "
        f"{frames} frames",
        "held_out_log_loss": {name: round(losses[name], 6) for name in CANDIDATES},
        "chosen": chosen,
        "all": _subset(per_video, labels, probabilities, threshold, low, high, lambda row: True),
        **{
            name: _subset(
                per_video, labels, probabilities, threshold, low, high, lambda row, name=name: row["source"] == name
            )
            for name in sorted(set(sources.tolist()))
        },
        "videos": len(sampled),
        "groups": len(set(groups.tolist())),
        "seed": seed,
    }
    seconds = time.monotonic() - started
    metrics["training_seconds"] = round(seconds, 1)
    (out_dir / "metrics.json").write_text(
        json.dumps({"metrics": metrics, "settings": settings, "per_video": per_video}, indent=2)
    )
    return CrossFitVideoResult(
        weights_path=weights_path, settings=settings, metrics=metrics, per_video=per_video, seconds=seconds
    )


def _settings(
    *,
    image_run: Path,
    image_settings: dict,
    chosen: str,
    best_aggregate: str,
    raw: dict[str, np.ndarray],
    labels: np.ndarray,
    frames: int,
    threshold: float,
    band: tuple[float, float],
) -> dict:
    """The version's settings: the chosen combination with calibrations fitted on every video."""
    aggregate_method = chosen if chosen in AGGREGATES else best_aggregate
    aggregate_scale, aggregate_bias = fit_platt(raw[aggregate_method], labels)
    settings = {
        "crop_rule": image_settings["crop_rule"],
        "detector": image_settings.get("detector", {}),
        "manipulation_types": image_settings.get("manipulation_types", []),
        "frame_calibration": {**image_settings["calibration"], "from": "image model calibration"},
        # Frames are scored as the image model scores faces, since its calibration was fitted on those logits.
        "test_time_flip": bool(image_settings.get("test_time_flip", False)),
        "aggregate": aggregate_options(aggregate_method, image_settings),
        "aggregate_calibration": {
            "scale": round(aggregate_scale, 6),
            "bias": round(aggregate_bias, 6),
            "fitted_on": "every training video (held-out fits give the figures)",
        },
        "frame_threshold": image_settings["threshold"],
        "frames": frames,
        "combine": {"method": "aggregate only", "sequence_weight": 0.0, "scale": 1.0, "bias": 0.0},
        "threshold": threshold,
        "uncertain_low": band[0],
        "uncertain_high": band[1],
        "chosen_by": f"lowest held-out log-loss of {', '.join(CANDIDATES)} (simplest first, margin {LOG_LOSS_MARGIN})",
        "image_weights_sha256": _sha256(image_run / "image_model.keras"),
    }
    if chosen in ("sequence_head", "aggregate_and_sequence"):
        sequence_scale, sequence_bias = fit_platt(raw["sequence_head"], labels)
        weight = 1.0 if chosen == "sequence_head" else 0.5
        aggregate_logits = aggregate_scale * raw[aggregate_method] + aggregate_bias
        sequence_logits = sequence_scale * raw["sequence_head"] + sequence_bias
        combined_scale, combined_bias = fit_platt(weight * sequence_logits + (1 - weight) * aggregate_logits, labels)
        settings.update(
            clip_len=CLIP_LEN,
            clip_stride=CLIP_STRIDE,
            sequence_calibration={"scale": round(sequence_scale, 6), "bias": round(sequence_bias, 6)},
            combine={
                "method": "logit_weighted, then Platt",
                "sequence_weight": weight,
                "scale": round(combined_scale, 6),
                "bias": round(combined_bias, 6),
            },
        )
    return settings


def _subset(per_video, labels, probabilities, threshold, low, high, keep) -> dict:
    members = [position for position, row in enumerate(per_video) if keep(row)]
    report = binary_report(labels[members], probabilities[members], threshold)
    reals = [position for position in members if labels[position] == 0]
    firm = [position for position in members if probabilities[position] <= low or probabilities[position] >= high]
    return {
        "n": len(members),
        "correct": int(sum(per_video[position]["correct"] for position in members)),
        "auc": report["auc"],
        "accuracy": report["accuracy"],
        "log_loss": report["log_loss"],
        "reals_called_fake": int(sum(probabilities[position] >= threshold for position in reals)),
        "reals": len(reals),
        "firm_fraction": round(len(firm) / len(members), 4) if members else None,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
