"""`manage.py framing_check`: how much an image model's ranking depends on how the face is framed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.crop_checks import add_crop_arguments

# Keeping the centre 1/1.3 of a crop removes the crop rule's 0.15 margin on each side: the bare face box, which
# is what the detector's crop holds when the face fills the picture. Bars of 12.5% over the left and right
# edges are a face in a padded or letterboxed frame.
BARE_BOX = 1 / 1.3
BAR_FRACTION = 0.125
VARIANTS = ("as cut", "bare face box", "letterboxed", "bare face box, letterboxed")


class Command(BaseCommand):
    help = (
        "Score a trained image model (a .keras file) on the cached test crops of each image source four ways: as "
        "cut, zoomed to the bare face box, with black bars over the left and right edges, and both; print the "
        "ROC-AUC per source as a Markdown table. A model whose figures fall when only the framing changes has "
        "learnt the framing; the training recipe's re-framing and bar augmentations are there against it."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weights", required=True, type=Path, help="the image model's .keras file")
        add_crop_arguments(parser, video_sources=False)

    def handle(self, *args, **options) -> None:
        from ml.augment import add_bars
        from ml.metrics import roc_auc
        from ml.train_sources import predict_rows
        from training.crop_checks import load_model_and_crops, source_names

        sources = source_names(options["sources"])
        classifier, pool = load_model_and_crops(
            options["weights"], cache=options["cache"], data=options["data"], sources=sources
        )
        size = int(classifier.inputs[0].shape[1])
        rows = np.flatnonzero(pool.split == "test")
        if not len(rows):
            raise CommandError("the cache holds no test crops of these sources")
        as_cut = pool.images[rows]
        rng = np.random.default_rng(0)

        def bare_box(crops: np.ndarray) -> np.ndarray:
            import cv2

            side = int(round(size * BARE_BOX))
            start = (size - side) // 2
            return np.stack(
                [cv2.resize(crop[start : start + side, start : start + side], (size, size)) for crop in crops]
            )

        def letterboxed(crops: np.ndarray) -> np.ndarray:
            return np.stack([add_bars(crop, BAR_FRACTION, vertical=True, rng=rng) for crop in crops])

        images = {
            "as cut": as_cut,
            "bare face box": bare_box(as_cut),
            "letterboxed": letterboxed(as_cut),
            "bare face box, letterboxed": letterboxed(bare_box(as_cut)),
        }
        labels, names = pool.labels[rows], pool.source[rows]
        present = [name for name in sources if (names == name).any()]
        lines = [
            f"ROC-AUC of `{options['weights'].name}` on the cached test crops ({len(rows)}), framed four ways:",
            "",
            "| framing | " + " | ".join(present) + " |",
            "|---|" + "---|" * len(present),
        ]
        for variant in VARIANTS:
            pool.images = images[variant]
            logits = predict_rows(classifier, pool, np.arange(len(rows)))["logits"]
            cells = []
            for name in present:
                members = names == name
                auc = roc_auc(labels[members], logits[members])
                cells.append("n/a" if auc is None else f"{auc:.3f}")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        self.stdout.write("\n".join(lines))
