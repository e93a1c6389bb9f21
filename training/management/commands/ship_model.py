"""`manage.py ship_model`: copy a training run into ml/weights/ and list it in the shipped manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.services import evaluation_metrics_key
from training.shipped import SHIPPED_DIR, SHIPPED_MANIFEST, shipped_frame_scores_name, shipped_weights_name

PLOTS = ("roc.png", "pr.png", "confusion.png", "training.png")


class Command(BaseCommand):
    help = (
        "Copy a training run's weights and plots into ml/weights/ and record the version (kind, name, version, "
        "weights file, settings, metrics, training notes) in ml/weights/manifest.json, replacing an earlier entry "
        "of the same version; earlier versions stay listed. --default makes it the version of its kind that "
        "register_shipped_models activates on every install."
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
        parser.add_argument("--default", action="store_true", help="activate this version of its kind on install")
        parser.add_argument("--to", type=Path, default=SHIPPED_DIR, help="shipped-models folder (default ml/weights)")

    def handle(self, *args, **options) -> None:
        run: Path = options["run"]
        kind = options["kind"]
        weights = run / f"{kind}_model.keras"
        metrics_path = run / "metrics.json"
        if not weights.is_file() or not metrics_path.is_file():
            raise CommandError(f"{run} is not a finished {kind} training run")
        saved = json.loads(metrics_path.read_text())
        version = options["model_version"]
        shipped_dir: Path = options["to"]
        manifest_path = shipped_dir / SHIPPED_MANIFEST.name
        weights_name = shipped_weights_name(kind, options["name"], version)
        shipped_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, shipped_dir / weights_name)
        plots_dir = shipped_dir / "plots" / f"{kind}-{version}"
        plots_dir.mkdir(parents=True, exist_ok=True)
        for plot in PLOTS:
            if (run / plot).is_file():
                shutil.copyfile(run / plot, plots_dir / plot)
        frames = run / "video_frames_oof.npz"
        if frames.is_file():
            self._ship_frame_scores(frames, shipped_dir / shipped_frame_scores_name(weights_name))
        metrics = {"training": saved["metrics"]}
        if "per_video" in saved:
            metrics["per_video"] = saved["per_video"]
        for evaluation_path in options["evaluation"]:
            evaluation = json.loads(evaluation_path.read_text())
            evaluation.pop("files", None)
            metrics[evaluation_metrics_key(evaluation.get("name") or evaluation["data"])] = evaluation
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": []}
        manifest["models"] = [
            entry
            for entry in manifest["models"]
            if (entry["kind"], entry["name"], entry["version"]) != (kind, options["name"], version)
        ]
        if options["default"]:
            for entry in manifest["models"]:
                if entry["kind"] == kind:
                    entry.pop("default", None)
        manifest["models"].append(
            {
                "kind": kind,
                "name": options["name"],
                "version": version,
                "weights": weights_name,
                "settings": saved["settings"],
                "metrics": metrics,
                "training_notes": options["notes"],
                **({"default": True} if options["default"] else {}),
            }
        )
        manifest["models"].sort(key=lambda entry: (entry["kind"], entry["version"]))
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        size_mb = (shipped_dir / weights_name).stat().st_size / 1e6
        self.stdout.write(f"shipped {kind} {options['name']}@{version}: {weights_name} ({size_mb:.1f} MB)")

    def _ship_frame_scores(self, frames: Path, target: Path) -> None:
        """The out-of-fold frame scores the model card's frame figures come from, without the embeddings (the
        video model's training reads those from the run folder), so the shipped file stays small."""
        import numpy as np

        saved = np.load(frames, allow_pickle=False)
        kept = {
            key: saved[key]
            for key in ("names", "units", "groups", "folds", "labels", "logits", "test_time_flip")
            if key in saved.files
        }
        np.savez_compressed(target, **kept)
        self.stdout.write(f"out-of-fold frame scores: {target.name} ({target.stat().st_size / 1e3:.0f} kB)")
