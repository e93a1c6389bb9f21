"""`manage.py reencode_images`: a copy of a labelled image folder at one size and one JPEG quality."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image, ImageOps

from training.progress import ProgressPrinter


class Command(BaseCommand):
    help = (
        "Centre-crop every image under SRC/real and SRC/fake to a square, resize it to --size and save it as "
        "JPEG at --quality under OUT (same layout). Evaluating on such a copy shows whether a model relies on "
        "file properties (size, aspect ratio, JPEG quality) that differ between the classes."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--src", required=True, type=Path, help="folder holding real/ and fake/ images")
        parser.add_argument("--out", required=True, type=Path, help="where the re-encoded copy goes")
        parser.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
        parser.add_argument("--quality", type=int, default=80, help="JPEG quality 1-95 (default 80)")

    def handle(self, *args, **options) -> None:
        from ml.datasets import IMAGE_SUFFIXES, labelled_files

        if not 1 <= options["quality"] <= 95:
            raise CommandError("--quality must be between 1 and 95")
        source: Path = options["src"]
        out: Path = options["out"]
        try:
            files = labelled_files(source, IMAGE_SUFFIXES)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        printer = ProgressPrinter(self.stdout, label="re-encode")
        size = options["size"]
        for number, (path, _label) in enumerate(files, start=1):
            target = out / path.relative_to(source).with_suffix(".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
            square.save(target, "JPEG", quality=options["quality"])
            printer.update(number, len(files))
        self.stdout.write(f"{len(files)} images re-encoded to {size}x{size} JPEG q{options['quality']} -> {out}")
