"""`manage.py prepare_faces`: cached MTCNN face crops of a labelled folder (real/, fake/)."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.progress import ProgressPrinter


class Command(BaseCommand):
    help = (
        "Detect the largest face of every image under DIR/real and DIR/fake with MTCNN, crop it with the "
        "project's crop rule and cache the crops as PNG under OUT (re-runs only process new or changed files)."
    )
    # Model work needs no URL or admin checks, and must run before the web apps exist.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, type=Path, help="folder holding real/ and fake/ images")
        parser.add_argument("--out", required=True, type=Path, help="cache folder for crops and index.json")
        parser.add_argument("--margin", type=float, default=0.15, help="crop margin around the face box (default 0.15)")
        parser.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        from ml.datasets import prepare_face_crops
        from ml.faces import CropRule
        from ml.runtime import configure_tensorflow

        data_dir: Path = options["data"]
        if not data_dir.is_dir():
            raise CommandError(f"{data_dir} is not a folder")
        configure_tensorflow(options["threads"])
        rule = CropRule(margin=options["margin"], size=options["size"])
        printer = ProgressPrinter(self.stdout, label="faces")
        started = time.monotonic()
        try:
            report = prepare_face_crops(data_dir, options["out"], rule=rule, progress=printer.update)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        printer.finish()
        self.stdout.write(
            f"{report.total} images: {report.cropped} cropped, {report.reused} reused from cache, "
            f"{report.no_face} without a face, {report.unreadable} unreadable "
            f"({time.monotonic() - started:.0f} s) -> {options['out']}"
        )
