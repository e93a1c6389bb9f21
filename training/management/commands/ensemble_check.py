"""`manage.py ensemble_check`: how far apart runs of one recipe are (seeds), and what averaging them gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml.metrics import rank_correlation


class Command(BaseCommand):
    help = (
        "Score the cached test crops of every image source with each --weights file, and take each run's "
        "out-of-fold video frame scores from its --frames file; print, as a Markdown table, each run's ROC-AUC "
        "per source, that of the runs' mean logit, and how closely the first two runs' scores agree (Spearman). "
        "Two seeds of one recipe that disagree on a source mean its figure is mostly noise; a mean that beats "
        "both is what an ensemble of them would gain."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        default_var = Path(django_settings.VAR_DIR) / "ml"
        parser.add_argument("--weights", required=True, nargs="+", type=Path, help="image models' .keras files")
        parser.add_argument(
            "--frames",
            nargs="+",
            type=Path,
            default=[],
            help="each run's out-of-fold frame scores (video_frames_oof.npz), in the order of --weights",
        )
        parser.add_argument(
            "--cache", type=Path, default=default_var / "sources", help="prepare_training_data's crop cache"
        )
        parser.add_argument("--data", type=Path, default=Path(django_settings.UNMASK_DATA_DIR), help="shared data")
        parser.add_argument("--sources", default="stylegan-celeba,sdfd-ffhq,dfdc-faces", help="image sources")
        parser.add_argument("--video-sources", default="ffpp,celebdf,celebdf-full", help="video sources")

    def handle(self, *args, **options) -> None:
        from ml.metrics import roc_auc
        from ml.train_sources import predict_rows
        from training.crop_checks import load_classifier, load_model_and_crops, out_of_fold_logits, source_names

        weights, frames = options["weights"], options["frames"]
        if len(weights) < 2:
            raise CommandError("give at least two --weights files to compare")
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
        size = int(classifier.inputs[0].shape[1])
        scores = []  # per run: test crops' logits, then its out-of-fold frame logits
        for number, path in enumerate(weights):
            if number:
                classifier = load_classifier(path)
                if int(classifier.inputs[0].shape[1]) != size:
                    raise CommandError(f"{path} takes {classifier.inputs[0].shape[1]} px crops, {weights[0]} {size}")
            logits = predict_rows(classifier, pool, tests)["logits"]
            if frames:
                logits = np.concatenate(
                    [logits, out_of_fold_logits(frames[number], [pool.names[row] for row in videos])]
                )
            scores.append(logits)
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
            f"ROC-AUC of {len(weights)} runs on the cached test crops"
            + (" and their out-of-fold video frames" if frames else "")
            + f" ({len(rows)} faces):",
            "",
            "| run | " + " | ".join(title for title, _ in columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        named = [(str(path), logits) for path, logits in zip(weights, scores, strict=True)]
        named.append((f"mean logit of the {len(weights)}", np.mean(scores, axis=0)))
        for title, logits in named:
            cells = [cell(roc_auc(labels[members], logits[members])) for _, members in columns]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        agreement = [cell(rank_correlation(scores[0][members], scores[1][members])) for _, members in columns]
        lines.append("| score agreement of the first two (Spearman) | " + " | ".join(agreement) + " |")
        self.stdout.write("\n".join(lines))
