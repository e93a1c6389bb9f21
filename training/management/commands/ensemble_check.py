"""`manage.py ensemble_check`: how far apart runs of one recipe are (seeds), and what averaging them gives; with
`--mirror`, what averaging each face with its mirror image gives (test-time augmentation)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml.metrics import rank_correlation
from training.crop_checks import add_crop_arguments


class Command(BaseCommand):
    help = (
        "Score the cached test crops of every image source with each --weights file, and take each run's "
        "out-of-fold video frame scores from its --frames file; print, as a Markdown table, each run's ROC-AUC "
        "per source, that of the runs' mean logit, and how closely the first two runs' scores agree (Spearman). "
        "Two seeds of one recipe that disagree on a source mean its figure is mostly noise; a mean that beats "
        "both is what an ensemble of them would gain. With --mirror, each run also scores every crop mirrored left "
        "to right and the table adds that view and the mean of the two views per run (one --weights is enough): "
        "what test-time flipping, at twice the per-face cost, would gain; the agreement row then compares the first "
        "run with its mirror. A run whose frames file says it scores every face with its mirror image (test-time "
        "flipping, `test_time_flip`) has its test crops scored that way too."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weights", required=True, nargs="+", type=Path, help="image models' .keras files")
        parser.add_argument(
            "--frames",
            nargs="+",
            type=Path,
            default=[],
            help="each run's out-of-fold frame scores (video_frames_oof.npz), in the order of --weights",
        )
        add_crop_arguments(parser)
        parser.add_argument(
            "--mirror",
            action="store_true",
            help="also score each crop mirrored left to right, and the mean of each run's two views",
        )

    def handle(self, *args, **options) -> None:
        from ml.metrics import roc_auc
        from ml.train_sources import predict_rows
        from training.crop_checks import (
            frames_flipped,
            load_classifier,
            load_model_and_crops,
            out_of_fold_logits,
            source_names,
        )

        weights, frames, mirror = options["weights"], options["frames"], options["mirror"]
        if len(weights) < 2 and not mirror:
            raise CommandError("give at least two --weights files to compare (or one with --mirror)")
        if frames and len(frames) != len(weights):
            raise CommandError(f"{len(frames)} --frames files for {len(weights)} --weights files: give one per run")
        sources = source_names(options["sources"])
        video_sources = source_names(options["video_sources"]) if frames else ()
        classifier, pool = load_model_and_crops(
            weights[0], cache=options["cache"], data=options["data"], sources=sources, video_sources=video_sources
        )
        tests = np.flatnonzero((pool.split == "test") & np.isin(pool.source, sources))
        videos = np.flatnonzero(np.isin(pool.source, video_sources))
        if not len(tests):
            raise CommandError("the cache holds no test crops of these sources")
        # A view, not a copy: the batches are cast to float32 (copied) one at a time anyway.
        mirrored = replace(pool, images=pool.images[:, :, ::-1]) if mirror else None
        size = int(classifier.inputs[0].shape[1])
        plain = []  # per run: logits of the test crops, then of the frames, each face as it is
        views = []  # (title, those logits): every row of the table
        for number, path in enumerate(weights):
            if number:
                classifier = load_classifier(path)
                if int(classifier.inputs[0].shape[1]) != size:
                    raise CommandError(f"{path} takes {classifier.inputs[0].shape[1]} px crops, {weights[0]} {size}")
            # A run with test-time flipping scored its frames as the mean of each face and its mirror image: its
            # test crops are scored alike, and --mirror, which measures what flipping would add, has nothing to add.
            flipped = bool(frames) and frames_flipped(frames[number])
            if flipped and mirror:
                raise CommandError(f"{path}'s run already scores every face with its mirror image: leave out --mirror")
            logits = predict_rows(classifier, pool, tests, mirror=flipped)["logits"]
            flipped = predict_rows(classifier, mirrored, tests)["logits"] if mirror else None
            if frames:
                held_out = out_of_fold_logits(frames[number], [pool.names[row] for row in videos])
                logits = np.concatenate([logits, held_out])
                if mirror:
                    flipped = np.concatenate(
                        [flipped, _held_out_mirror_logits(classifier, pool, mirrored, videos, held_out, path)]
                    )
            plain.append(logits)
            views.append((str(path), logits))
            if mirror:
                views.append((f"{path}, mirrored", flipped))
                views.append((f"{path}, mean of it and its mirror", (logits + flipped) / 2))
        rows = np.concatenate([tests, videos])
        labels, names = pool.labels[rows], pool.source[rows]
        is_frame = np.isin(names, video_sources)
        columns = [(f"{name} test", names == name) for name in sources]
        if frames:
            columns += [("frames out of fold, all", is_frame)]
            columns += [(f"{name} frames", names == name) for name in video_sources]
        columns = [(title, members) for title, members in columns if members.any()]

        def cell(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        lines = [
            f"ROC-AUC of {len(weights)} run{'s' if len(weights) > 1 else ''} on the cached test crops"
            + (" and their out-of-fold video frames" if frames else "")
            + (", each face as it is and mirrored" if mirror else "")
            + f" ({len(rows)} faces):",
            "",
            "| run | " + " | ".join(title for title, _ in columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        if len(weights) > 1:
            views.append((f"mean logit of the {len(weights)}", np.mean(plain, axis=0)))
        for title, logits in views:
            cells = [cell(roc_auc(labels[members], logits[members])) for _, members in columns]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        # With --mirror the first two views are a run and its mirror: how much flipping changes a face's rank.
        first, second = views[0][1], views[1][1]
        agreement = [cell(rank_correlation(first[members], second[members])) for _, members in columns]
        lines.append("| score agreement of the first two (Spearman) | " + " | ".join(agreement) + " |")
        self.stdout.write("\n".join(lines))


def _held_out_mirror_logits(classifier, pool, mirrored, videos: np.ndarray, held_out: np.ndarray, path) -> np.ndarray:
    """The run's own logits of the mirrored video frames, which are held out only when the run's model never
    trained on a video (no video stage): then its scores of the frames as they are equal the out-of-fold ones."""
    from ml.train_sources import predict_rows

    own = predict_rows(classifier, pool, videos)["logits"]
    if not np.allclose(own, held_out, atol=1e-3):
        raise CommandError(
            f"{path} trained on video frames (its out-of-fold frame scores are its fold models', not its own), "
            "so its mirrored frames cannot be scored held out: leave out --frames, or --mirror"
        )
    return predict_rows(classifier, mirrored, videos)["logits"]
