"""`manage.py train_video_model`: the sequence model over per-frame image-model features, with held-out figures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Track faces in labelled videos (DIR/real, DIR/fake; several --data allowed), embed them with an image "
        "model (frozen), train a GRU on short clips, report leave-one-group-out figures on held-out whole videos, "
        "then train the shipped head on all videos; save weights + metrics.json + plots under --out and register "
        "a ModelVersion (--activate makes it the active video model)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        default_var = Path(django_settings.VAR_DIR) / "ml"
        data_root = Path(django_settings.UNMASK_DATA_DIR) / "videos"
        parser.add_argument(
            "--data",
            type=Path,
            action="append",
            default=None,
            help=f"labelled video folder, repeatable (default: {data_root}/ffpp and {data_root}/celebdf)",
        )
        image = parser.add_mutually_exclusive_group()
        image.add_argument("--image-version", default=None, help="registered image model (default: active)")
        image.add_argument(
            "--image-run",
            type=Path,
            default=None,
            help="a train_image_model run folder, unregistered (e.g. a --self-blended frame encoder)",
        )
        parser.add_argument("--cache", type=Path, default=default_var / "video_faces", help="face-track cache")
        parser.add_argument("--out", type=Path, default=None, help="run folder (default var/ml/runs/video-<time>)")
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--clip-len", type=int, default=8, help="frames per training clip (default 8)")
        parser.add_argument("--frames", type=int, default=32, help="frames a scan samples (default 32)")
        parser.add_argument("--max-frames", type=int, default=160, help="frames cached per training video")
        parser.add_argument("--units", type=int, default=32, help="GRU units (default 32)")
        parser.add_argument("--clips-per-video", type=int, default=240)
        parser.add_argument("--name", default="unmask-video", help="model name to register")
        parser.add_argument("--model-version", default=None, help="version to register (default: run timestamp)")
        parser.add_argument("--no-register", action="store_true", help="train and save only")
        parser.add_argument("--activate", action="store_true", help="make the registered version the active one")
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        import numpy as np

        from ml.plots import save_evaluation_plots
        from ml.runtime import configure_tensorflow
        from ml.train_video import train_video_model
        from training.model_specs import find_version, spec_from_run, spec_from_version
        from training.models import ModelVersion

        if options["image_run"] is not None and (options["image_run"] / "video_frames_oof.npz").is_file():
            self._train_from_frame_scores(options)
            return
        data_root = Path(django_settings.UNMASK_DATA_DIR) / "videos"
        data_dirs = options["data"] or [data_root / "ffpp", data_root / "celebdf"]
        for data_dir in data_dirs:
            if not data_dir.is_dir():
                raise CommandError(f"{data_dir} is not a folder")
        try:
            if options["image_run"] is not None:
                image_spec = spec_from_run(options["image_run"], kind="image")
            else:
                image_spec = spec_from_version(find_version(kind="image", version=options["image_version"]))
        except (ModelVersion.DoesNotExist, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        out_dir: Path = options["out"] or Path(django_settings.VAR_DIR) / "ml" / "runs" / f"video-{stamp}"
        configure_tensorflow(options["threads"])
        result = train_video_model(
            image_weights=Path(image_spec.weights_path),
            image_settings=image_spec.settings,
            data_dirs=data_dirs,
            cache_dir=options["cache"],
            out_dir=out_dir,
            epochs=options["epochs"],
            seed=options["seed"],
            clip_len=options["clip_len"],
            frames=options["frames"],
            max_frames=options["max_frames"],
            units=options["units"],
            clips_per_video=options["clips_per_video"],
            progress=self._say,
        )
        labels = np.asarray([1 if row["label"] == "fake" else 0 for row in result.per_video])
        probabilities = np.asarray([row["fake_probability"] for row in result.per_video])
        plots = save_evaluation_plots(
            out_dir, labels, probabilities, result.settings["threshold"], title="video, held-out videos"
        )
        for row in result.per_video:
            mark = "ok " if row["correct"] else "MISS"
            self.stdout.write(
                f"  {mark} {row['video']:<40} {row['label']:<4} p={row['fake_probability']:.3f} "
                f"(sequence {row['sequence_probability']:.3f}, frames {row['aggregate_probability']:.3f}) "
                f"-> {row['verdict']}"
            )
        for subset in ("ffpp", "celebdf", "all"):
            figures = result.metrics.get(subset) or {}
            if figures:
                self.stdout.write(
                    f"held-out {subset}: {figures.get('correct')}/{figures['n']} right, auc={figures['auc']} "
                    f"accuracy={figures['accuracy']} log_loss={figures['log_loss']} ece={figures['ece']}"
                )
        self.stdout.write(
            f"sequence weight {result.settings['combine']['sequence_weight']}, threshold {result.settings['threshold']}, "
            f"band [{result.settings['uncertain_low']}, {result.settings['uncertain_high']}] ({result.seconds:.0f} s)"
        )
        self.stdout.write(
            f"saved {result.weights_path}, {out_dir / 'metrics.json'}, {', '.join(p.name for p in plots)}"
        )
        self._register(
            options,
            result,
            out_dir=out_dir,
            stamp=stamp,
            training_notes=(
                f"Sequence head trained by train_video_model on {', '.join(str(d) for d in data_dirs)} with the "
                f"frozen image model {image_spec.label}; figures are leave-one-group-out on held-out videos."
            ),
        )

    def _train_from_frame_scores(self, options: dict) -> None:
        """v2: the combination of frame scores chosen on the image run's cross-fitted frames (see
        ml/train_video_crossfit.py); the image run's frame encoder goes into the video model file."""
        import numpy as np

        from ml.plots import save_evaluation_plots
        from ml.runtime import configure_tensorflow
        from ml.train_video_crossfit import train_video_from_frame_scores

        configure_tensorflow(options["threads"])
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        out_dir: Path = options["out"] or Path(django_settings.VAR_DIR) / "ml" / "runs" / f"video-{stamp}"
        result = train_video_from_frame_scores(
            image_run=options["image_run"],
            out_dir=out_dir,
            frames=options["frames"],
            seed=options["seed"],
            sequence_epochs=options["epochs"],
            sequence_units=options["units"],
            progress=self._say,
        )
        labels = np.asarray([1 if row["label"] == "fake" else 0 for row in result.per_video])
        probabilities = np.asarray([row["fake_probability"] for row in result.per_video])
        save_evaluation_plots(out_dir, labels, probabilities, result.settings["threshold"], title="held-out videos")
        for row in result.per_video:
            mark = "ok  " if row["correct"] else "MISS"
            self.stdout.write(
                f"  {mark} {row['video']:<44} {row['label']:<4} p={row['fake_probability']:.3f} "
                f"({row['frames_over_threshold']}/{row['frames']} frames over the frame threshold) -> {row['verdict']}"
            )
        for subset, figures in result.metrics.items():
            if isinstance(figures, dict) and "correct" in figures:
                self.stdout.write(
                    f"held-out {subset}: {figures['correct']}/{figures['n']} right, auc={figures['auc']}, "
                    f"reals called fake {figures['reals_called_fake']}/{figures['reals']}, "
                    f"firm verdicts {figures['firm_fraction']}"
                )
        self.stdout.write(
            f"chosen: {result.metrics['chosen']}; threshold {result.settings['threshold']}, band "
            f"[{result.settings['uncertain_low']}, {result.settings['uncertain_high']}] ({result.seconds:.0f} s); "
            f"saved {out_dir}"
        )
        self._register(
            options,
            result,
            out_dir=out_dir,
            stamp=stamp,
            training_notes=(
                f"Frame combination chosen by train_video_model on the cross-fitted frame scores of image run "
                f"{options['image_run']} ({result.metrics['chosen']}); figures are out-of-fold on held-out video groups."
            ),
        )

    def _register(self, options: dict, result, *, out_dir: Path, stamp: str, training_notes: str) -> None:
        """Register the run's video model (unless --no-register; version: --model-version, or the run's time
        stamp), activated with --activate; its id and label go to `out_dir/registered.json`."""
        if options["no_register"]:
            return
        from training.services import model_version_register

        model_version = model_version_register(
            kind="video",
            name=options["name"],
            version=options["model_version"] or stamp,
            weights_path=result.weights_path,
            settings=result.settings,
            metrics={"held_out": result.metrics, "per_video": result.per_video},
            training_notes=training_notes,
            activate=options["activate"],
        )
        (out_dir / "registered.json").write_text(json.dumps({"id": model_version.pk, "label": model_version.label}))
        state = "active" if model_version.is_active else "registered (not active)"
        self.stdout.write(f"model version {model_version} {state}")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
