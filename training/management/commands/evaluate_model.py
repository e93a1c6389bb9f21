"""`manage.py evaluate_model`: score a labelled folder through the scan pipeline and report the figures."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.progress import ProgressPrinter


class Command(BaseCommand):
    help = (
        "Score every file under DATA/real and DATA/fake exactly as a scan would (MTCNN, crop rule, model, "
        "calibration) and report n, ROC-AUC, accuracy, precision, recall, F1, log-loss and expected calibration "
        "error at the version's threshold. Files with no face (or unreadable) are errors: listed and counted, "
        "not scored. --json prints one JSON object (the figures plus a per-file list) and nothing else."
    )
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        # `--version V` names a model version here; let it replace Django's "print Django's version" flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", required=True, choices=["image", "video"])
        parser.add_argument("--data", required=True, type=Path, help="folder holding real/ and fake/")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--version", dest="model_version", default=None, help="registered version, e.g. 1.0.0 (default: active)"
        )
        source.add_argument("--run", type=Path, default=None, help="an unregistered training run folder instead")
        parser.add_argument("--image-version", default=None, help="image model used beside a video model")
        parser.add_argument("--frames", type=int, default=32, help="frames sampled per video (default 32)")
        parser.add_argument("--json", action="store_true", help="print one JSON object only")
        parser.add_argument(
            "--record",
            action="store_true",
            help="store the figures on the registered version as metrics 'evaluate:<DATA folder name>', "
            "where the admin compares them with the active version's on the same data",
        )
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        from ml.datasets import IMAGE_SUFFIXES, VIDEO_SUFFIXES, labelled_files
        from ml.errors import MediaError
        from ml.metrics import binary_report
        from ml.pipeline import Analyzer
        from ml.runtime import configure_tensorflow

        kind = options["kind"]
        as_json = options["json"]
        if options["record"] and options["run"] is not None:
            raise CommandError("--record stores figures on a registered version: use --version, not --run")
        # Keep stdout for the JSON object alone: anything a library prints goes to stderr.
        chatter = sys.stderr if as_json else self.stdout
        try:
            files = labelled_files(options["data"], IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        configure_tensorflow(options["threads"])
        image_spec, video_spec = self._specs(kind, options)
        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            analyzer = Analyzer(image_spec, video_spec, video_frames=options["frames"])
            printer = ProgressPrinter(chatter, label=f"evaluate {kind}")
            per_file = []
            for number, (path, label) in enumerate(files, start=1):
                entry = {"path": str(path.relative_to(options["data"])), "label": "fake" if label else "real"}
                try:
                    result = analyzer.analyze_image(path) if kind == "image" else analyzer.analyze_video(path)
                except MediaError as exc:
                    entry.update(fake_probability=None, verdict=None, error=str(exc))
                else:
                    entry.update(fake_probability=result["fake_probability"], verdict=result["verdict"])
                    entry["faces"] = len(result["faces"])
                    entry["error"] = "no face found" if result["verdict"] == "no_face" else None
                per_file.append(entry)
                printer.update(number, len(files))
        scored = [entry for entry in per_file if entry["error"] is None]
        errors = [entry for entry in per_file if entry["error"] is not None]
        labels = [1 if entry["label"] == "fake" else 0 for entry in scored]
        probabilities = [entry["fake_probability"] for entry in scored]
        decision = analyzer.video_decision if kind == "video" else analyzer.image_decision
        report = binary_report(labels, probabilities, decision.threshold) if scored else {"n": 0}
        summary = {
            "n": report["n"],
            "auc": report.get("auc"),
            "accuracy": report.get("accuracy"),
            "precision": report.get("precision"),
            "recall": report.get("recall"),
            "f1": report.get("f1"),
            "log_loss": report.get("log_loss"),
            "ece": report.get("ece"),
            "n_files": len(per_file),
            "n_errors": len(errors),
            "threshold": decision.threshold,
            "uncertain_band": [decision.uncertain_low, decision.uncertain_high],
            "uncertain_fraction": round(sum(entry["verdict"] == "uncertain" for entry in scored) / len(scored), 6)
            if scored
            else None,
            "confusion": report.get("confusion"),
            "model": analyzer.labels[kind],
            "kind": kind,
            "data": str(options["data"]),
            "seconds": round(time.monotonic() - started, 1),
            "files": per_file,
        }
        if options["record"]:
            self._record(kind, options["model_version"], summary, chatter)
        if as_json:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(
            f"{kind} model {summary['model']} on {options['data']}: n={summary['n']} (of {summary['n_files']} files, "
            f"{summary['n_errors']} errors) auc={summary['auc']} accuracy={summary['accuracy']} "
            f"precision={summary['precision']} recall={summary['recall']} f1={summary['f1']} "
            f"log_loss={summary['log_loss']} ece={summary['ece']} at threshold {summary['threshold']} "
            f"({summary['seconds']} s)"
        )
        for entry in errors:
            self.stdout.write(f"  error: {entry['path']}: {entry['error']}")

    def _record(self, kind: str, version: str | None, summary: dict, chatter) -> None:
        from training.model_specs import find_version
        from training.services import evaluation_metrics_key, model_version_record_evaluation

        model_version = find_version(kind=kind, version=version)
        model_version_record_evaluation(model_version=model_version, evaluation=summary)
        chatter.write(f"Recorded as {evaluation_metrics_key(summary['data'])} on {model_version.label}\n")

    def _specs(self, kind: str, options: dict):
        from training.model_specs import find_version, spec_from_run, spec_from_version
        from training.models import ModelVersion

        if options["run"] is not None and options["model_version"] is not None:
            raise CommandError("pass either --version or --run, not both")
        try:
            if kind == "image":
                if options["run"] is not None:
                    return spec_from_run(options["run"], kind="image"), None
                return spec_from_version(find_version(kind="image", version=options["model_version"])), None
            image_spec = spec_from_version(find_version(kind="image", version=options["image_version"]))
            if options["run"] is not None:
                return image_spec, spec_from_run(options["run"], kind="video")
            return image_spec, spec_from_version(find_version(kind="video", version=options["model_version"]))
        except (ModelVersion.DoesNotExist, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
