"""Training the image model from cached face crops: augmentation, calibration on val, decision band, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.augment import SELF_BLEND_AUGMENT, AugmentConfig, augment_batch
from ml.datasets import FaceCropSet, crop_rule_of, load_face_crops
from ml.image_model import ImageModel, build_image_model
from ml.metrics import binary_report, choose_threshold, choose_uncertain_band, fit_platt
from ml.self_blend import self_blend

DEFAULT_DETECTOR_SETTINGS = {"detect_max_side": 960, "min_confidence": 0.9, "min_face_size": 20}


@dataclass
class ImageTrainingResult:
    weights_path: Path
    settings: dict
    metrics: dict
    history: dict[str, list[float]]
    val_labels: np.ndarray
    val_probabilities: np.ndarray
    seconds: float
    notes: list[str] = field(default_factory=list)


def _batches(crops: FaceCropSet, batch_size: int, seed: int, config: AugmentConfig, *, self_blended: bool = False):
    """A Keras PyDataset of freshly augmented, shuffled batches (a new draw every epoch).

    With `self_blended`, `crops` are all unblended faces (label 0): in every batch a random half is replaced
    by a fresh self-blended copy (label 1), before the same augmentation as the other half.
    """
    import keras

    class AugmentedCrops(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(crops.labels))

        def __len__(self) -> int:
            return int(np.ceil(len(crops.labels) / batch_size))

        def __getitem__(self, batch_number: int):
            members = self.order[batch_number * batch_size : (batch_number + 1) * batch_size]
            images, labels = crops.images[members], crops.labels[members]
            if self_blended:
                images, labels = _half_self_blended(images, crops.landmarks[members], self.rng)
            images = augment_batch(images, self.rng, config).astype(np.float32)
            return images, labels.astype(np.float32).reshape(-1, 1)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(crops.labels))

    return AugmentedCrops()


def _half_self_blended(
    faces: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The face crops with a random half swapped for self-blended copies; labels 0 (as is) and 1 (blended)."""
    images = faces.copy()
    labels = np.zeros(len(faces), dtype=np.int32)
    for position in rng.permutation(len(faces))[: len(faces) // 2]:
        images[position] = self_blend(faces[position], landmarks[position], rng)
        labels[position] = 1
    return images, labels


def self_blended_set(faces: FaceCropSet, seed: int) -> FaceCropSet:
    """A fixed evaluation set: every crop once as it is and once self-blended (seeded)."""
    rng = np.random.default_rng(seed)
    blended = np.stack(
        [self_blend(crop, points, rng) for crop, points in zip(faces.images, faces.landmarks, strict=True)]
    )
    return FaceCropSet(
        images=np.concatenate([faces.images, blended]),
        labels=np.concatenate([np.zeros(len(faces.images), np.int32), np.ones(len(blended), np.int32)]),
        sources=[*faces.sources, *(f"{source} (self-blended)" for source in faces.sources)],
        missing=faces.missing,
        landmarks=np.concatenate([faces.landmarks, faces.landmarks]),
    )


def faces_with_landmarks(crops: FaceCropSet) -> FaceCropSet:
    """Every crop whose five landmarks are known, labelled 0 ("not blended"): what self-blending works from.

    Generated faces count too: a StyleGAN portrait has no blending seam, so it is an honest negative for
    a seam detector, and it doubles the faces to learn from.
    """
    kept = crops.subset(np.isfinite(crops.landmarks).all(axis=(1, 2)))
    kept.labels = np.zeros_like(kept.labels)
    return kept


def train_image_model(
    *,
    train_cache: Path,
    val_cache: Path,
    out_dir: Path,
    epochs: int = 14,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
    limit_per_class: int | None = None,
    embedding_dim: int = 128,
    widths: tuple[int, ...] = (48, 96, 160, 256),
    augment: AugmentConfig | None = None,
    self_blended: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ImageTrainingResult:
    """Train on `train_cache` crops, calibrate and pick the decision band on `val_cache`, save to `out_dir`.

    Writes `out_dir/image_model.keras` and `out_dir/metrics.json`. The metrics are those of the calibrated
    model on the clean val crops (the same crops the calibration was fitted on: two parameters only).

    `self_blended` trains a face-swap frame encoder instead (see `ml.self_blend`): every face of both caches
    is a negative ("not blended") and the positives are self-blended copies of them, made afresh in every
    batch for training and once, seeded, for val; augmentation defaults to the lighter SELF_BLEND_AUGMENT.
    """
    import keras

    started = time.monotonic()
    say = progress or (lambda message: None)
    rule = crop_rule_of(train_cache)
    if crop_rule_of(val_cache) != rule:
        raise ValueError("train and val crops were made with different crop rules; run prepare_faces again")
    train = load_face_crops(train_cache, limit_per_class=limit_per_class)
    val = load_face_crops(val_cache, limit_per_class=limit_per_class)
    if self_blended:
        train = faces_with_landmarks(train)
        val = self_blended_set(faces_with_landmarks(val), seed=seed + 1)
        if len(train.labels) == 0 or len(val.labels) == 0:
            raise ValueError("self-blending needs real face crops with landmarks in both caches")
    say(
        f"train: {len(train.labels)} crops ({int(train.labels.sum())} fake), "
        f"val: {len(val.labels)} crops ({int(val.labels.sum())} fake); crop rule {rule.to_dict()}"
    )
    keras.utils.set_random_seed(seed)
    classifier = build_image_model(input_size=rule.size, embedding_dim=embedding_dim, widths=widths, seed=seed)
    steps = epochs * int(np.ceil(len(train.labels) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps), alpha=0.02)
    classifier.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "val_auc": []}
    val_images = val.images.astype(np.float32)

    class EpochReport(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_started = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            from ml.metrics import roc_auc, sigmoid

            logs = logs or {}
            val_logits = np.asarray(classifier.predict(val_images, batch_size=128, verbose=0)).reshape(-1)
            probabilities = sigmoid(val_logits)
            eps = 1e-7
            val_loss = float(
                -np.mean(val.labels * np.log(probabilities + eps) + (1 - val.labels) * np.log(1 - probabilities + eps))
            )
            history["loss"].append(float(logs.get("loss", float("nan"))))
            history["accuracy"].append(float(logs.get("accuracy", float("nan"))))
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(float(((val_logits >= 0) == (val.labels == 1)).mean()))
            history["val_auc"].append(float(roc_auc(val.labels, val_logits) or 0.0))
            say(
                f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f} acc {history['accuracy'][-1]:.4f} "
                f"| val loss {val_loss:.4f} acc {history['val_accuracy'][-1]:.4f} auc {history['val_auc'][-1]:.5f} "
                f"({time.monotonic() - self.epoch_started:.0f} s)"
            )

    classifier.fit(
        _batches(
            train,
            batch_size,
            seed,
            augment or (SELF_BLEND_AUGMENT if self_blended else AugmentConfig()),
            self_blended=self_blended,
        ),
        epochs=epochs,
        verbose=0,
        callbacks=[EpochReport()],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / "image_model.keras"
    classifier.save(weights_path)

    uncalibrated = ImageModel(classifier, {"crop_rule": rule.to_dict()})
    val_logits = uncalibrated.predict(val.images).logits
    scale, bias = fit_platt(val_logits, val.labels)
    settings = {
        "crop_rule": rule.to_dict(),
        "input_size": rule.size,
        "embedding_dim": embedding_dim,
        "calibration": {"method": "platt", "scale": round(scale, 6), "bias": round(bias, 6), "fitted_on": "val"},
        "detector": dict(DEFAULT_DETECTOR_SETTINGS),
    }
    calibrated = ImageModel(classifier, settings)
    val_probabilities = calibrated.calibrate(val_logits)
    threshold = choose_threshold(val.labels, val_probabilities)
    low, high = choose_uncertain_band(val.labels, val_probabilities, threshold)
    settings.update(threshold=threshold, uncertain_low=low, uncertain_high=high)
    metrics = binary_report(val.labels, val_probabilities, threshold)
    firm = (val_probabilities <= low) | (val_probabilities >= high)
    metrics["uncertain_fraction"] = round(float(1.0 - firm.mean()), 6)
    metrics["val_no_face"] = len(val.missing)
    metrics["train_crops"] = len(train.labels)
    metrics["fakes"] = "self-blended copies of the crops" if self_blended else "fake crops of the caches"
    metrics["epochs"] = epochs
    metrics["seed"] = seed
    metrics["parameters"] = int(classifier.count_params())
    seconds = time.monotonic() - started
    metrics["training_seconds"] = round(seconds, 1)
    (out_dir / "metrics.json").write_text(
        json.dumps({"metrics": metrics, "settings": settings, "history": history}, indent=2)
    )
    return ImageTrainingResult(
        weights_path=weights_path,
        settings=settings,
        metrics=metrics,
        history=history,
        val_labels=val.labels,
        val_probabilities=val_probabilities,
        seconds=seconds,
    )
