"""`manage.py ship_model`: copy a training run into ml/weights/ and list it in the shipped manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.services import evaluation_metrics_key
from training.shipped import SHIPPED_DIR, SHIPPED_MANIFEST

PLOTS = ("roc.png", "pr.png", "confusion.png", "training.png")


class Command(BaseCommand):
    help = (
        "Copy a training run's weights and plots into ml/weights/ and record the version (kind, name, version, "
        "weights file, settings, metrics, training notes) in ml/weights/manifest.json, replacing an earlier entry "
        "of the same kind. register_shipped_models then registers it on every install."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", required=True, type=Path, help="training run folder")
        parser.add_argument("--kind", required=True, choices=["image", "video"])
        parser.add_argument("--name", required=True)
        parser.add_argument("--model-version", required=True)
        parser.add_argument("--notes", default="", help="training notes stored with the version")
        parser.add_argument(
            "--evaluation", type=Path, action="append", default=[], help="evaluate_model --json output to attach"
        )

    def handle(self, *args, **options) -> None:
        run: Path = options["run"]
        kind = options["kind"]
        weights = run / f"{kind}_model.keras"
        metrics_path = run / "metrics.json"
        if not weights.is_file() or not metrics_path.is_file():
            raise CommandError(f"{run} is not a finished {kind} training run")
        saved = json.loads(metrics_path.read_text())
        version = options["model_version"]
        weights_name = f"{kind}-{options['name']}-{version}.keras"
        SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, SHIPPED_DIR / weights_name)
        plots_dir = SHIPPED_DIR / "plots" / kind
        plots_dir.mkdir(parents=True, exist_ok=True)
        for plot in PLOTS:
            if (run / plot).is_file():
                shutil.copyfile(run / plot, plots_dir / plot)
        metrics = {"training": saved["metrics"]}
        if "per_video" in saved:
            metrics["per_video"] = saved["per_video"]
        for evaluation_path in options["evaluation"]:
            evaluation = json.loads(evaluation_path.read_text())
            evaluation.pop("files", None)
            metrics[evaluation_metrics_key(evaluation["data"])] = evaluation
        manifest = json.loads(SHIPPED_MANIFEST.read_text()) if SHIPPED_MANIFEST.is_file() else {"models": []}
        manifest["models"] = [entry for entry in manifest["models"] if entry["kind"] != kind]
        manifest["models"].append(
            {
                "kind": kind,
                "name": options["name"],
                "version": version,
                "weights": weights_name,
                "settings": saved["settings"],
                "metrics": metrics,
                "training_notes": options["notes"],
            }
        )
        manifest["models"].sort(key=lambda entry: entry["kind"])
        SHIPPED_MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
        size_mb = (SHIPPED_DIR / weights_name).stat().st_size / 1e6
        self.stdout.write(f"shipped {kind} {options['name']}@{version}: {weights_name} ({size_mb:.1f} MB)")
