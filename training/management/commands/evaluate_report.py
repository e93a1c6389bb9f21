"""`manage.py evaluate_report`: the image model card's figures, every held-out set at once, through the scan pipeline."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import sys
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.progress import ProgressPrinter

CARD_START = "<!-- evaluate_report:start -->"
CARD_END = "<!-- evaluate_report:end -->"


class Command(BaseCommand):
    help = (
        "Run evaluate_model on every held-out set the image model card quotes (each source's test split, "
        "re-encoded copies, sources left out of training with --left-out), add the out-of-fold video-frame "
        "figures of the version's training run and the figures of all held-out data together (ECE, the "
        "false-positive rate of every real source), and write report.md, report.json and plots under --out. "
        "--card replaces the card's table between its evaluate_report markers; --compare adds another version's "
        "figures on the same files; --record stores every row on the versions for the admin's comparison."
    )
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        # `--version V` names a model version here, as in evaluate_model.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", type=Path, default=Path(django_settings.UNMASK_DATA_DIR), help="shared data")
        parser.add_argument(
            "--version", dest="model_version", default=None, help="image model version (default: active)"
        )
        parser.add_argument("--compare", action="append", default=[], help="another version scored on the same files")
        parser.add_argument(
            "--frames",
            type=Path,
            default=None,
            help="out-of-fold video-frame scores of the version's training (default: the shipped file beside its "
            "weights, <weights>-oof-frames.npz)",
        )
        parser.add_argument(
            "--left-out",
            action="append",
            default=[],
            metavar="SOURCE=RUN",
            help="a training run made with --leave-out SOURCE, scored on that source's test split (repeatable)",
        )
        parser.add_argument(
            "--out", type=Path, default=Path(django_settings.VAR_DIR) / "ml" / "report" / "image", help="report folder"
        )
        parser.add_argument("--card", type=Path, default=None, help="model card whose figures table to replace")
        parser.add_argument(
            "--video-version",
            default=None,
            help="video model version whose held-out videos to recompute from the same frame scores (default: active)",
        )
        parser.add_argument("--video-card", type=Path, default=None, help="video model card whose table to replace")
        parser.add_argument("--record", action="store_true", help="store each row's figures on the versions")
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        from ml.runtime import configure_tensorflow
        from training.model_specs import find_version
        from training.models import ModelVersion

        configure_tensorflow(options["threads"])
        try:
            main = find_version(kind="image", version=options["model_version"])
            compared = [find_version(kind="image", version=label) for label in options["compare"]]
        except ModelVersion.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        left_out = []
        for item in options["left_out"]:
            source, _, run = item.partition("=")
            if not run or not (Path(run) / "image_model.keras").is_file():
                raise CommandError(f"--left-out {item!r}: expected SOURCE=RUN with a training run folder")
            left_out.append((source, Path(run)))
        frames_path = options["frames"] or _shipped_frame_scores(main)
        from training.reporting import build_image_report, card_table, write_report

        out: Path = options["out"]
        with contextlib.redirect_stdout(sys.stderr):
            report = build_image_report(
                data_dir=options["data"],
                version=main,
                compared=compared,
                frames_path=frames_path if frames_path.is_file() else None,
                left_out=left_out,
                work_dir=out,
                progress=lambda label: ProgressPrinter(self.stdout, label=label).update,
            )
        report["machine"] = f"{platform.machine()}, {_cpu_count()} CPU cores, {platform.python_version()}"
        report["date"] = dt.date.today().isoformat()
        write_report(report, out)
        if options["record"]:
            self._record(report, [main, *compared])
        table = card_table(report)
        if options["card"] is not None:
            self._replace_in_card(options["card"], table)
        self.stdout.write(table)
        self.stdout.write(f"report written to {out / 'report.md'}, {out / 'report.json'} and plots in {out}")
        self._video_report(options, frames_path, out, machine=report["machine"], date=report["date"])

    def _video_report(self, options: dict, frames_path: Path, out: Path, *, machine: str, date: str) -> None:
        """The video card's held-out videos, from the same out-of-fold frame scores as the image report."""
        from training.model_specs import find_version
        from training.models import ModelVersion
        from training.reporting import build_video_report, video_card_table

        try:
            video = find_version(kind="video", version=options["video_version"])
        except ModelVersion.DoesNotExist:
            self.stdout.write("no video model version: the video figures are skipped")
            return
        if "aggregate" not in video.settings or not frames_path.is_file():
            self.stdout.write(f"{video.label} was not chosen on cross-fitted frame scores: its figures are skipped")
            return
        report = {**build_video_report(version=video, frames_path=frames_path), "machine": machine, "date": date}
        (out / "video-report.json").write_text(json.dumps(report, indent=2))
        table = video_card_table(report)
        (out / "video-report.md").write_text(table + "\n")
        if options["video_card"] is not None:
            self._replace_in_card(options["video_card"], table)
        self.stdout.write(table)

    def _record(self, report: dict, versions: list) -> None:
        from training.services import model_version_record_evaluation

        for version in versions:
            for row in report["rows"]:
                summary = row["versions"].get(version.label)
                if summary:
                    model_version_record_evaluation(model_version=version, evaluation=summary)
        self.stdout.write(f"recorded the figures on {', '.join(version.label for version in versions)}")

    def _replace_in_card(self, card: Path, table: str) -> None:
        text = card.read_text()
        if CARD_START not in text or CARD_END not in text:
            raise CommandError(f"{card} has no {CARD_START} ... {CARD_END} markers to put the figures between")
        before, rest = text.split(CARD_START, 1)
        _, after = rest.split(CARD_END, 1)
        card.write_text(f"{before}{CARD_START}\n{table}\n{CARD_END}{after}")
        self.stdout.write(f"{card}: figures replaced")


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _shipped_frame_scores(version) -> Path:
    """The out-of-fold frame scores `ship_model` put beside the version's weights in ml/weights/ (registration
    copies the weights alone into the media storage, so that copy is looked beside second)."""
    from training.shipped import SHIPPED_DIR, shipped_frame_scores_name, shipped_weights_name

    shipped = SHIPPED_DIR / shipped_frame_scores_name(shipped_weights_name(version.kind, version.name, version.version))
    stored = Path(version.weights.path).with_name(shipped_frame_scores_name(version.weights.name))
    return shipped if shipped.is_file() or not stored.is_file() else stored
