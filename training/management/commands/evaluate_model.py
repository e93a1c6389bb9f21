"""`manage.py evaluate_model`: score a labelled folder through the scan pipeline and report the figures."""

from __future__ import annotations

import contextlib
import json
import sys
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
        parser.add_argument(
            "--source",
            default=None,
            help="with --split: the ml/sources.py source DATA is (e.g. dfdc-faces), to score one of its splits only",
        )
        parser.add_argument(
            "--split", default=None, choices=["train", "calibration", "test"], help="score only this split of --source"
        )
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
        from ml.pipeline import Analyzer
        from ml.runtime import configure_tensorflow
        from training.evaluation import evaluate_files

        kind = options["kind"]
        as_json = options["json"]
        if options["record"] and options["run"] is not None:
            raise CommandError("--record stores figures on a registered version: use --version, not --run")
        # Keep stdout for the JSON object alone: anything a library prints goes to stderr.
        chatter = sys.stderr if as_json else self.stdout
        data_dir: Path = options["data"]
        name = data_dir.name
        try:
            if options["split"]:
                files = self._split_files(options)
                name = f"{options['source']}:{options['split']}"
            else:
                files = labelled_files(data_dir, IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        configure_tensorflow(options["threads"])
        image_spec, video_spec = self._specs(kind, options)
        with contextlib.redirect_stdout(sys.stderr):
            analyzer = Analyzer(image_spec, video_spec, video_frames=options["frames"])
            printer = ProgressPrinter(chatter, label=f"evaluate {kind}")
            summary = evaluate_files(analyzer, files, kind=kind, root=data_dir, name=name, progress=printer.update)
        errors = [entry for entry in summary["files"] if entry["error"] is not None]
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

    def _split_files(self, options: dict):
        from ml.sources import SOURCES, split_files

        source = SOURCES.get(options["source"] or "")
        if source is None:
            raise CommandError(f"--split needs --source, one of {', '.join(SOURCES)}")
        # Splits are defined on the shared data folder (DFDC's source videos come from its metadata.csv).
        data_root = Path(options["data"])
        for _ in source.path.split("/"):
            data_root = data_root.parent
        if source.folder(data_root) != Path(options["data"]):
            raise CommandError(f"--data must be the {source.name} folder itself ({source.path} under the data folder)")
        return split_files(source, data_root, options["split"])

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
