"""`manage.py compare_runs`: one Markdown table of image training runs' held-out figures, for choosing a recipe."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Print a Markdown table comparing `train_image_model --sources` runs from their metrics.json: the recipe "
        "(backbone, trainable layers, augmentation, emphasis, steps), ROC-AUC on each source's test split and on "
        "self-blended held-out faces (scored on the cached crops), ROC-AUC on video frames no stage had trained "
        "on, and training time. These figures choose between recipes; the model card's own figures come from "
        "evaluate_report, through the scan pipeline."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("runs", nargs="+", type=Path, help="training run folders")

    def handle(self, *args, **options) -> None:
        from ml.image_model import PRETRAINED_BACKBONES

        rows = []
        for run in options["runs"]:
            path = run / "metrics.json"
            if not path.is_file():
                raise CommandError(f"{run} has no metrics.json from a training run")
            metrics = json.loads(path.read_text())["metrics"]
            if "config" not in metrics:
                raise CommandError(f"{run} is not a train_image_model --sources run")
            rows.append((run.name, metrics))
        sources = sorted({name for _, metrics in rows for name in metrics["held_out"]["test_auc"]})
        videos = sorted({name for _, metrics in rows for name in metrics.get("stage1_video_frames_auc") or {}})
        header = ["run", "backbone", "trained layers", "augment", "emphasis", "steps (stage 1 / 2)"]
        header += [f"{name} test" for name in sources] + ["self-blended"]
        header += [f"{name} frames, unseen" for name in videos] + ["minutes"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, metrics in rows:
            config = metrics["config"]
            options = config.get("backbone_options") or {}
            trained = options.get("trainable_from") or (
                "all" if config["backbone"] in PRETRAINED_BACKBONES else "all (scratch)"
            )
            augment = _augment_name(config.get("augment") or {})
            emphasis = ", ".join(f"{key} x{value:g}" for key, value in (config.get("stream_emphasis") or {}).items())
            held_out = metrics["held_out"]
            cells = [
                name,
                config["backbone"] + (f" {list(options.get('widths'))}" if options.get("widths") else ""),
                str(trained),
                augment,
                emphasis or "none",
                f"{config['stage1_steps']} / {config['stage2_steps']}",
                *(_number(held_out["test_auc"].get(source)) for source in sources),
                _number(held_out.get("self_blended_calibration_auc")),
                *(_number((metrics.get("stage1_video_frames_auc") or {}).get(video)) for video in videos),
                f"{metrics['training_seconds'] / 60:.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        self.stdout.write("\n".join(lines))


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _augment_name(values: dict) -> str:
    from dataclasses import asdict

    from ml.train_sources import AUGMENTATIONS

    for name, preset in AUGMENTATIONS.items():
        if {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(preset).items()} == values:
            return name
    return "custom"
