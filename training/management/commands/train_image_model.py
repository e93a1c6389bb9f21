"""`manage.py train_image_model`: train, calibrate and register the face-crop image model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Train the image model on face crops made by prepare_faces (train and val caches), calibrate it and "
        "choose its threshold and uncertain band on val, save weights + metrics.json + plots under --out and "
        "register a ModelVersion (--activate makes it the active image model)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        default_var = Path(django_settings.VAR_DIR) / "ml"
        parser.add_argument("--train", type=Path, default=default_var / "faces" / "train", help="train crop cache")
        parser.add_argument("--val", type=Path, default=default_var / "faces" / "val", help="val crop cache")
        parser.add_argument("--out", type=Path, default=None, help="run folder (default var/ml/runs/image-<time>)")
        parser.add_argument("--epochs", type=int, default=14)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--learning-rate", type=float, default=2e-3)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--limit-per-class", type=int, default=None, help="use at most N crops per class")
        parser.add_argument("--embedding-dim", type=int, default=128)
        parser.add_argument(
            "--widths", default="48,96,160,256", help="channels per stage, comma-separated (default 48,96,160,256)"
        )
        parser.add_argument(
            "--self-blended",
            action="store_true",
            help="train a face-swap frame encoder for the video model: every face crop against self-blended "
            "copies of it (ml/self_blend.py). It is saved, never registered as an image model: pass the run "
            "folder to train_video_model --image-run",
        )
        parser.add_argument("--name", default="unmask-image", help="model name to register")
        parser.add_argument("--model-version", default=None, help="version to register (default: the run's timestamp)")
        parser.add_argument("--no-register", action="store_true", help="train and save only")
        parser.add_argument("--activate", action="store_true", help="make the registered version the active one")
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        from ml.plots import save_evaluation_plots
        from ml.runtime import configure_tensorflow
        from ml.train_image import train_image_model

        for key in ("train", "val"):
            if not (options[key] / "index.json").is_file():
                raise CommandError(f"{options[key]} has no crop cache; run prepare_faces --out {options[key]} first")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        out_dir: Path = options["out"] or Path(django_settings.VAR_DIR) / "ml" / "runs" / f"image-{stamp}"
        configure_tensorflow(options["threads"])
        widths = tuple(int(width) for width in options["widths"].split(","))
        result = train_image_model(
            train_cache=options["train"],
            val_cache=options["val"],
            out_dir=out_dir,
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            learning_rate=options["learning_rate"],
            seed=options["seed"],
            limit_per_class=options["limit_per_class"],
            embedding_dim=options["embedding_dim"],
            widths=widths,
            self_blended=options["self_blended"],
            progress=self._say,
        )
        plots = save_evaluation_plots(
            out_dir,
            result.val_labels,
            result.val_probabilities,
            result.settings["threshold"],
            title="image model, val",
            history=result.history,
        )
        metrics = result.metrics
        self.stdout.write(
            f"val (calibrated): n={metrics['n']} auc={metrics['auc']} accuracy={metrics['accuracy']} "
            f"f1={metrics['f1']} log_loss={metrics['log_loss']} ece={metrics['ece']} "
            f"threshold={result.settings['threshold']} band=[{result.settings['uncertain_low']}, "
            f"{result.settings['uncertain_high']}] ({result.seconds:.0f} s)"
        )
        self.stdout.write(
            f"saved {result.weights_path}, {out_dir / 'metrics.json'}, {', '.join(p.name for p in plots)}"
        )
        if options["self_blended"]:
            self.stdout.write(f"frame encoder saved; train the video model on it with --image-run {out_dir}")
            return
        if options["no_register"]:
            return
        from training.services import model_version_register

        notes = (
            f"Trained by train_image_model on {result.metrics['train_crops']} face crops from {options['train']}, "
            f"{options['epochs']} epochs, seed {options['seed']}; calibrated (Platt) and thresholded on {options['val']}."
        )
        model_version = model_version_register(
            kind="image",
            name=options["name"],
            version=options["model_version"] or stamp,
            weights_path=result.weights_path,
            settings=result.settings,
            metrics={"val": metrics},
            training_notes=notes,
            activate=options["activate"],
        )
        (out_dir / "registered.json").write_text(json.dumps({"id": model_version.pk, "label": model_version.label}))
        state = "active" if model_version.is_active else "registered (not active)"
        self.stdout.write(f"model version {model_version} {state}")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
