"""`manage.py sharpness_check`: how much an image model's score follows how sharp the face is, per source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml.metrics import rank_correlation
from ml.sharpness import sharpness
from training.crop_checks import add_crop_arguments


def self_blend_focus_table(pool, sources: list[str], count: int) -> list[str]:
    """Markdown rows: per source, how sharp `count` self-blends (seed 0) are against the real face each was made
    from (median ratio, share blurrier), plain and with even focus. A blend that is mostly blurrier than its face
    teaches "a blurry face is fake"."""
    from ml.self_blend import self_blend

    rng = np.random.default_rng(0)
    lines = [
        f"Self-blends of up to {count} real faces per source (seed 0): their sharpness over their face's",
        "",
        "| source | faces | plain: median ratio | plain: share blurrier | even focus: median ratio | even focus: share blurrier |",
        "|---|---|---|---|---|---|",
    ]
    for name in sources:
        reals = np.flatnonzero((pool.source == name) & (pool.labels == 0) & pool.has_landmarks)
        if not len(reals):
            continue
        chosen = rng.choice(reals, size=min(count, len(reals)), replace=False)
        faces = pool.sharpness[chosen]
        cells = []
        for even_focus in (False, True):
            blends = sharpness(
                [self_blend(pool.images[row], pool.landmarks[row], rng, even_focus=even_focus) for row in chosen]
            )
            ratio = blends / np.maximum(faces, 1e-9)
            cells += [f"{np.median(ratio):.2f}", f"{np.mean(ratio < 1):.2f}"]
        lines.append(f"| {name} | {len(chosen)} | " + " | ".join(cells) + " |")
    return lines


class Command(BaseCommand):
    help = (
        "For each source of the cached crops (image test splits, every video's frames), print how sharp its real "
        "and fake faces are, how well sharpness alone tells them apart, and how closely the model's score follows "
        "sharpness within each class (Spearman), as a Markdown table. A model whose score falls as a face gets "
        "sharper has learnt 'blurry means fake', and ranks backwards wherever a source's fakes are the sharper ones. "
        "Video frames are scored by --frames (a training run's out-of-fold scores) where given, else by --weights."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weights", required=True, type=Path, help="the image model's .keras file")
        parser.add_argument(
            "--frames", type=Path, default=None, help="out-of-fold frame scores (a run's video_frames_oof.npz)"
        )
        add_crop_arguments(parser)
        parser.add_argument(
            "--self-blends",
            type=int,
            default=0,
            metavar="N",
            help="also blend N real faces per source (seed 0) and print how sharp the blends are against their "
            "face, for the plain and the --even-blend-focus self-blends",
        )

    def handle(self, *args, **options) -> None:
        from ml.metrics import roc_auc
        from ml.train_sources import predict_rows
        from training.crop_checks import frames_flipped, model_and_crops_of, out_of_fold_logits

        classifier, pool, sources, video_sources = model_and_crops_of(options)
        is_video = np.isin(pool.source, video_sources)
        rows = np.flatnonzero((pool.split == "test") | is_video)
        if not len(rows):
            raise CommandError("the cache holds no test crops or video frames of these sources")
        # A run that scores each face with its mirror image gave its frames so: its test crops are scored alike.
        flipped = options["frames"] is not None and frames_flipped(options["frames"])
        scores = predict_rows(classifier, pool, rows, mirror=flipped)["logits"]
        frame_scores = "the model itself (frames it may have trained on)"
        if options["frames"] is not None:
            video = is_video[rows]
            scores[video] = out_of_fold_logits(options["frames"], [pool.names[row] for row in rows[video]])
            frame_scores = "out of fold"
        crispness = pool.sharpness[rows]
        labels, names = pool.labels[rows], pool.source[rows]

        def cell(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        lines = [
            f"Sharpness (variance of the Laplacian of the crop's centre) and the score of `{options['weights'].name}`"
            f" on the cached test crops and video frames ({len(rows)}; video frames scored {frame_scores}"
            + ("; every face as the mean of it and its mirror image" if flipped else "")
            + "):",
            "",
            "| source | faces (fake) | sharpness, real / fake (median) | ROC-AUC of sharpness alone (sharper = fake) "
            "| score vs sharpness, reals | score vs sharpness, fakes | ROC-AUC of the score |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in [*sources, *video_sources]:
            members = names == name
            if not members.any():
                continue
            real, fake = members & (labels == 0), members & (labels == 1)
            medians = " / ".join(f"{np.median(crispness[part]):.0f}" if part.any() else "n/a" for part in (real, fake))
            lines.append(
                f"| {name} | {int(members.sum())} ({int(fake.sum())}) | {medians} | "
                f"{cell(roc_auc(labels[members], crispness[members]))} | "
                f"{cell(rank_correlation(scores[real], crispness[real]))} | "
                f"{cell(rank_correlation(scores[fake], crispness[fake]))} | "
                f"{cell(roc_auc(labels[members], scores[members]))} |"
            )
        if options["self_blends"] > 0:
            lines += ["", *self_blend_focus_table(pool, [*sources, *video_sources], options["self_blends"])]
        self.stdout.write("\n".join(lines))
