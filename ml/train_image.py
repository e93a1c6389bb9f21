"""Training the image model from cached face crops: augmentation, calibration on val, decision band, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.augment import AugmentConfig, augment_batch
from ml.datasets import FaceCropSet, crop_rule_of, load_face_crops
from ml.image_model import ImageModel, build_image_model
from ml.metrics import binary_report, choose_threshold, choose_uncertain_band, fit_platt

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


def _batches(crops: FaceCropSet, batch_size: int, seed: int, config: AugmentConfig):
    """A Keras PyDataset of freshly augmented, class-balanced shuffled batches (a new draw every epoch)."""
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
            images = augment_batch(crops.images[members], self.rng, config).astype(np.float32)
            return images, crops.labels[members].astype(np.float32).reshape(-1, 1)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(crops.labels))

    return AugmentedCrops()


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
    progress: Callable[[str], None] | None = None,
) -> ImageTrainingResult:
    """Train on `train_cache` crops, calibrate and pick the decision band on `val_cache`, save to `out_dir`.

    Writes `out_dir/image_model.keras` and `out_dir/metrics.json`. The metrics are those of the calibrated
    model on the clean val crops (the same crops the calibration was fitted on: two parameters only).
    """
    import keras

    started = time.monotonic()
    say = progress or (lambda message: None)
    rule = crop_rule_of(train_cache)
    if crop_rule_of(val_cache) != rule:
        raise ValueError("train and val crops were made with different crop rules; run prepare_faces again")
    train = load_face_crops(train_cache, limit_per_class=limit_per_class)
    val = load_face_crops(val_cache, limit_per_class=limit_per_class)
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
        _batches(train, batch_size, seed, augment or AugmentConfig()),
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
