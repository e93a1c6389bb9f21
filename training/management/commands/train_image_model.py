"""`manage.py train_image_model`: train, calibrate and register the face-crop image model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Train the image model. With --sources (the v2 recipe, ml/train_sources.py): an ImageNet-pretrained "
        "backbone fine-tuned on a balanced mixture of every named source and self-blended faces (with --stage2-steps "
        "N, then on video frames in cross-fitted folds), calibrated and thresholded on held-out data of all sources together; "
        "crops come from prepare_training_data. Without it (the v1 recipe): one source's train and val caches "
        "from prepare_faces. Saves weights + metrics.json + plots under --out and registers a ModelVersion "
        "(--activate makes it the active image model)."
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
        recipe = parser.add_argument_group("v2 recipe: every source at once (ml/train_sources.py)")
        recipe.add_argument(
            "--sources",
            default=None,
            help="comma-separated image sources of ml/sources.py to train on, e.g. "
            "stylegan-celeba,sdfd-ffhq,dfdc-faces (selects the v2 recipe)",
        )
        recipe.add_argument(
            "--video-sources",
            default="ffpp,celebdf,celebdf-full",
            help="video sources for stage 2 ('' for none; default ffpp,celebdf,celebdf-full)",
        )
        recipe.add_argument("--leave-out", default=None, help="a source kept out of training, reported as unseen")
        recipe.add_argument(
            "--cache", type=Path, default=default_var / "sources", help="prepare_training_data's crop cache"
        )
        recipe.add_argument("--data", type=Path, default=Path(django_settings.UNMASK_DATA_DIR), help="shared data")
        recipe.add_argument(
            "--backbone",
            default="mobilenet_v2",
            choices=["mobilenet_v2", "mobilenet_v2_local", "separable_cnn"],
            help="mobilenet_v2 (the shipped one), mobilenet_v2_local (the same cut after its stride-8 blocks, so "
            "each feature sees a 59-pixel patch: an experiment against the leave-one-source-out figures), or "
            "separable_cnn (from scratch)",
        )
        recipe.add_argument(
            "--backbone-weights",
            type=Path,
            default=Path(django_settings.UNMASK_WEIGHTS_DIR) / "mobilenet_v2_1.0_224_no_top.h5",
            help="ImageNet weights of the MobileNetV2 backbone",
        )
        recipe.add_argument(
            "--trainable-from",
            default=None,
            help="first MobileNetV2 layer to fine-tune ('all' for every layer; batch norm always stays frozen; "
            "default block_6_expand, block_3_expand for mobilenet_v2_local)",
        )
        recipe.add_argument("--input-size", type=int, default=160, help="crop side in pixels (default 160)")
        recipe.add_argument("--stage1-steps", type=int, default=3800)
        recipe.add_argument(
            "--stage2-steps",
            type=int,
            default=0,
            help="steps of each video stage-2 run (default 0: no video stage, stage 1 ships and scores every frame "
            "held out; the 12-02 recipe used 500, cross-fitted)",
        )
        recipe.add_argument("--stage1-learning-rate", type=float, default=3e-4)
        recipe.add_argument("--stage2-learning-rate", type=float, default=1e-4)
        recipe.add_argument("--no-self-blended", action="store_true", help="no self-blended stream")
        recipe.add_argument(
            "--augment", default="light", choices=["mixture", "light", "v1"], help="augmentation preset (default light)"
        )
        recipe.add_argument(
            "--emphasis",
            default="dfdc-faces=3,self-blended=2,videos=3",
            help="draw factors per stream ('' for every stream alike; default dfdc-faces=3,self-blended=2,videos=3: "
            "face swaps are the hard fakes)",
        )
        recipe.add_argument("--no-cross-fit", action="store_true", help="skip the per-fold video stage 2 runs")
        recipe.add_argument(
            "--video-reals-only",
            action="store_true",
            help="stage 2 learns from the videos' real frames and self-blends of them, never their fake frames "
            "(so an identity cannot stand in for a seam)",
        )
        recipe.add_argument(
            "--sharpness-matching",
            type=float,
            default=0.0,
            metavar="P",
            help="blur a drawn crop, with probability P, to the focus of its source's other class (ml/sharpness.py), "
            "so that blur cannot stand in for a seam (default %(default)s)",
        )
        recipe.add_argument(
            "--even-blend-focus",
            action="store_true",
            help="self-blends whose inner face is as often sharper than the real face as blurrier (ml/self_blend.py)",
        )
        recipe.add_argument(
            "--cross-blended",
            action="store_true",
            help="a stream of pseudo-swaps pasting one real person's inner face onto another's, aligned by "
            "landmarks and colour-matched (Face X-ray's blended images; ml/self_blend.py); off in the shipped recipe",
        )
        recipe.add_argument(
            "--resynthesised-fakes",
            action="store_true",
            help="a stream of pseudo-fakes re-synthesised from the training reals by a small upsampling "
            "autoencoder (ml/resynthesis.py), trained first for --resynthesis-steps; off in the shipped recipe",
        )
        recipe.add_argument("--resynthesis-steps", type=int, default=400, help="autoencoder steps (default 400)")
        recipe.add_argument(
            "--test-time-flip",
            choices=["on", "off"],
            default=None,
            help="score every face as the mean of it and its mirror image (the recipe's default: on), in the "
            "decision, the held-out figures, the video frames and scans; with --recalibrate, switch a finished run "
            "(default: as it was trained)",
        )
        recipe.add_argument(
            "--recalibrate",
            type=Path,
            default=None,
            metavar="RUN",
            help="no training: make a finished run's decision (calibration, threshold, band, metrics.json) anew "
            "from its saved weights and out-of-fold frames, with the current decision code",
        )
        parser.add_argument("--name", default="unmask-image", help="model name to register")
        parser.add_argument("--model-version", default=None, help="version to register (default: the run's timestamp)")
        parser.add_argument("--no-register", action="store_true", help="train and save only")
        parser.add_argument("--activate", action="store_true", help="make the registered version the active one")
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        from ml.runtime import configure_tensorflow

        configure_tensorflow(options["threads"])
        if options["recalibrate"] is not None:
            self._recalibrate(options)
            return
        if options["sources"] is not None:
            self._train_on_sources(options)
            return
        self._train_on_one_source(options)

    def _recalibrate(self, options: dict) -> None:
        from ml.train_sources import recalibrate_image_run

        run: Path = options["recalibrate"]
        if not (run / "metrics.json").is_file() or not (run / "image_model.keras").is_file():
            raise CommandError(f"{run} is not a finished train_image_model --sources run")
        try:
            result = recalibrate_image_run(
                run,
                cache_root=options["cache"],
                data_dir=options["data"],
                test_time_flip=None if options["test_time_flip"] is None else options["test_time_flip"] == "on",
                progress=self._say,
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"cannot recalibrate {run}: {exc}") from exc
        _save_calibration_plots(run, result)
        settings = result.settings
        self.stdout.write(
            f"recalibrated: threshold {settings['threshold']}, band [{settings['uncertain_low']}, "
            f"{settings['uncertain_high']}], held out: {json.dumps(result.metrics['held_out'])}; saved {run}"
        )

    def _train_on_sources(self, options: dict) -> None:
        from ml.image_model import PRETRAINED_BACKBONES
        from ml.sources import SOURCES
        from ml.train_sources import AUGMENTATIONS, SourceTrainingConfig, train_image_on_sources

        sources = tuple(name for name in options["sources"].split(",") if name)
        video_sources = tuple(name for name in options["video_sources"].split(",") if name)
        unknown = sorted(set(sources + video_sources) - set(SOURCES))
        if unknown or not sources:
            raise CommandError(f"unknown or no sources ({', '.join(unknown)}); known: {', '.join(SOURCES)}")
        if options["self_blended"]:
            raise CommandError("--self-blended is the v1 face-swap encoder; the v2 recipe self-blends on its own")
        backbone_options = {}
        if options["backbone"] in PRETRAINED_BACKBONES:
            trainable_from = options["trainable_from"] or PRETRAINED_BACKBONES[options["backbone"]]
            backbone_options["trainable_from"] = None if trainable_from == "all" else trainable_from
        else:
            backbone_options["widths"] = tuple(int(width) for width in options["widths"].split(","))
        try:
            emphasis = {
                name: float(factor)
                for name, _, factor in (item.partition("=") for item in options["emphasis"].split(",") if item)
            }
        except ValueError as exc:
            raise CommandError(f"--emphasis must look like dfdc-faces=2,self-blended=1.5 ({exc})") from exc
        config = SourceTrainingConfig(
            backbone=options["backbone"],
            augment=AUGMENTATIONS[options["augment"]],
            stream_emphasis=emphasis,
            backbone_options=backbone_options,
            input_size=options["input_size"],
            embedding_dim=options["embedding_dim"],
            batch_size=options["batch_size"],
            stage1_steps=options["stage1_steps"],
            stage1_learning_rate=options["stage1_learning_rate"],
            stage2_steps=options["stage2_steps"],
            stage2_learning_rate=options["stage2_learning_rate"],
            sources=sources,
            video_sources=video_sources,
            self_blended=not options["no_self_blended"],
            cross_fit=not options["no_cross_fit"],
            video_fakes=not options["video_reals_only"],
            sharpness_matching=options["sharpness_matching"],
            even_blend_focus=options["even_blend_focus"],
            cross_blended=options["cross_blended"],
            test_time_flip=options["test_time_flip"] != "off",
            resynthesised=options["resynthesised_fakes"],
            resynthesis_steps=options["resynthesis_steps"],
            seed=options["seed"],
        )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        out_dir: Path = options["out"] or Path(django_settings.VAR_DIR) / "ml" / "runs" / f"image-{stamp}"
        try:
            result = train_image_on_sources(
                cache_root=options["cache"],
                data_dir=options["data"],
                out_dir=out_dir,
                config=config,
                backbone_weights=options["backbone_weights"] if options["backbone"] in PRETRAINED_BACKBONES else None,
                leave_out=options["leave_out"],
                progress=self._say,
            )
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        _save_calibration_plots(out_dir, result)
        settings = result.settings
        self.stdout.write(
            f"threshold {settings['threshold']}, band [{settings['uncertain_low']}, {settings['uncertain_high']}], "
            f"held out: {json.dumps(result.metrics['held_out'])} ({result.seconds:.0f} s); saved {out_dir}"
        )
        if options["no_register"] or options["leave_out"]:
            return
        notes = (
            f"Trained by train_image_model --sources {','.join(sources)} (video stage: "
            f"{','.join(video_sources) or 'none'}), {config.backbone} at {config.input_size} px, seed {config.seed}; "
            f"calibrated on {settings['calibration']['fitted_on']}."
        )
        metrics = {"training": result.metrics["held_out"]}
        self._register(options, result.weights_path, settings, metrics, notes, out_dir, stamp=stamp)

    def _register(
        self, options: dict, weights_path: Path, settings: dict, metrics: dict, notes: str, out_dir: Path, *, stamp: str
    ) -> None:
        """Register the run as a ModelVersion (version: --model-version, or the run's time stamp)."""
        from training.services import model_version_register

        model_version = model_version_register(
            kind="image",
            name=options["name"],
            version=options["model_version"] or stamp,
            weights_path=weights_path,
            settings=settings,
            metrics=metrics,
            training_notes=notes,
            activate=options["activate"],
        )
        (out_dir / "registered.json").write_text(json.dumps({"id": model_version.pk, "label": model_version.label}))
        state = "active" if model_version.is_active else "registered (not active)"
        self.stdout.write(f"model version {model_version} {state}")

    def _train_on_one_source(self, options: dict) -> None:
        from ml.plots import save_evaluation_plots
        from ml.train_image import train_image_model

        for key in ("train", "val"):
            if not (options[key] / "index.json").is_file():
                raise CommandError(f"{options[key]} has no crop cache; run prepare_faces --out {options[key]} first")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        out_dir: Path = options["out"] or Path(django_settings.VAR_DIR) / "ml" / "runs" / f"image-{stamp}"
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
        notes = (
            f"Trained by train_image_model on {result.metrics['train_crops']} face crops from {options['train']}, "
            f"{options['epochs']} epochs, seed {options['seed']}; calibrated (Platt) and thresholded on {options['val']}."
        )
        self._register(options, result.weights_path, result.settings, {"val": metrics}, notes, out_dir, stamp=stamp)

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()


def _save_calibration_plots(run_dir: Path, result) -> None:
    """The decision's plots of a multi-source run (trained or recalibrated): on the calibration data it was
    chosen on."""
    from ml.plots import save_evaluation_plots

    save_evaluation_plots(
        run_dir,
        result.calibration_labels,
        result.calibration_probabilities,
        result.settings["threshold"],
        title="image model, calibration data of all sources",
    )
