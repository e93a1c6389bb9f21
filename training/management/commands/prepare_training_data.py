"""`manage.py prepare_training_data`: cached face crops of every training source (images and videos)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.progress import ProgressPrinter


class Command(BaseCommand):
    help = (
        "Find and crop the faces of every source in ml/sources.py under DATA (the largest face of each image; "
        "the main person's track over evenly spaced frames of each video) with the scan pipeline's MTCNN and "
        "crop rule, and cache them under OUT. Re-runs only process new or changed files; a new crop rule "
        "re-cuts image crops from the cached boxes without detecting again."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", type=Path, default=Path(django_settings.UNMASK_DATA_DIR), help="shared data")
        parser.add_argument(
            "--out", type=Path, default=Path(django_settings.VAR_DIR) / "ml" / "sources", help="cache folder"
        )
        parser.add_argument("--sources", default="", help="comma-separated source names (default: all)")
        parser.add_argument("--margin", type=float, default=0.15, help="crop margin around the face box")
        parser.add_argument("--size", type=int, default=160, help="crop side in pixels (default 160)")
        parser.add_argument("--max-frames", type=int, default=160, help="frames read per training video")
        parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = automatic)")

    def handle(self, *args, **options) -> None:
        from ml.datasets import cache_video_faces, prepare_face_crops
        from ml.faces import CropRule
        from ml.runtime import configure_tensorflow
        from ml.sources import SOURCES

        names = [name for name in options["sources"].split(",") if name] or list(SOURCES)
        unknown = sorted(set(names) - set(SOURCES))
        if unknown:
            raise CommandError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
        data_dir: Path = options["data"]
        missing = [name for name in names if not SOURCES[name].folder(data_dir).is_dir()]
        if missing:
            raise CommandError(f"{data_dir} lacks {', '.join(SOURCES[name].path for name in missing)}")
        configure_tensorflow(options["threads"])
        rule = CropRule(margin=options["margin"], size=options["size"])
        out: Path = options["out"]
        for name in names:
            source = SOURCES[name]
            if source.media != "images":
                continue
            for part in source.parts:
                label = f"{name}/{part}" if part else name
                printer = ProgressPrinter(self.stdout, label=label)
                report = prepare_face_crops(
                    source.folder(data_dir, part), out / name / part, rule=rule, progress=printer.update
                )
                printer.finish()
                self.stdout.write(
                    f"{label}: {report.total} images, {report.cropped} cropped, {report.reused} reused, "
                    f"{report.no_face} without a face, {report.unreadable} unreadable ({report.seconds:.0f} s)"
                )
        video_dirs = [SOURCES[name].folder(data_dir) for name in names if SOURCES[name].media == "videos"]
        if video_dirs:
            started = time.monotonic()
            videos = cache_video_faces(
                video_dirs, out / "videos", rule=rule, max_frames=options["max_frames"], progress=self._say
            )
            tracked = sum(len(video.frame_indices) for video in videos)
            self.stdout.write(
                f"videos: {len(videos)} videos, {tracked} tracked frames, "
                f"{sum(1 for video in videos if len(video.frame_indices) == 0)} without a face "
                f"({time.monotonic() - started:.0f} s)"
            )
        self.stdout.write(f"crops cached under {out} (crop rule {rule.to_dict()})")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
