"""`manage.py export_reviewed --out DIR`: the media people confirmed fake or real, as DIR/fake and DIR/real."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path, PurePath

from django.core.management.base import BaseCommand, CommandError, CommandParser

from newsroom.evaluation import GROUND_TRUTH, reviewed_scans
from scans.models import Scan

FOLDERS = {1: "fake", 0: "real"}


class Command(BaseCommand):
    help = (
        "Copy the original file of every finished scan whose current reviewer label is confirmed_fake or "
        "confirmed_real into OUT/fake or OUT/real (named by scan id), with OUT/reviewed.csv listing each file's "
        "scan, label, reviewer and the model's verdict; the layout `evaluate_model --data OUT` and the training "
        "commands read. Disputed scans are left out. Files already there are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="folder to write fake/ and real/ into")
        parser.add_argument("--kind", choices=Scan.Kind.values, help="only images or only videos (default: both)")

    def handle(self, *args, **options) -> None:
        out: Path = options["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} is a file, not a folder")
        for folder in FOLDERS.values():
            (out / folder).mkdir(parents=True, exist_ok=True)
        scans = reviewed_scans(kind=options["kind"]).order_by("created_at")
        written = {"fake": 0, "real": 0}
        missing: list[str] = []
        rows = []
        for scan in scans.iterator():
            folder = FOLDERS[GROUND_TRUTH[scan.review_label]]
            suffix = PurePath(scan.file.name).suffix.lower()
            target = out / folder / f"{scan.pk}{suffix}"
            if not target.exists():
                try:
                    with scan.file.open("rb") as source, target.open("wb") as copy:
                        shutil.copyfileobj(source, copy)
                except (FileNotFoundError, ValueError):
                    target.unlink(missing_ok=True)
                    missing.append(str(scan.pk))
                    continue
            written[folder] += 1
            review = scan.reviews.first()
            rows.append(
                [
                    f"{folder}/{target.name}",
                    str(scan.pk),
                    scan.kind,
                    scan.review_label,
                    review.reviewer_name if review else "",
                    review.created_at.isoformat() if review else "",
                    scan.verdict,
                    "" if scan.fake_probability is None else f"{scan.fake_probability:.6f}",
                ]
            )
        with (out / "reviewed.csv").open("w", newline="", encoding="utf-8") as manifest:
            writer = csv.writer(manifest)
            writer.writerow(
                ["file", "scan", "kind", "label", "reviewer", "reviewed_at", "model_verdict", "fake_probability"]
            )
            writer.writerows(rows)
        self.stdout.write(f"{written['fake']} fake and {written['real']} real files in {out} (reviewed.csv lists them)")
        if missing:
            self.stderr.write(f"{len(missing)} labelled scans have no stored file any more: {', '.join(missing)}")
