"""`manage.py temporal_check`: do the faces of the training videos flicker more in fakes than in reals?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.crop_checks import source_names


class Command(BaseCommand):
    help = (
        "For every video of the named video sources, measure the temporal cues of `ml.temporal` (the main "
        "person's face cut from a sampled frame and from the next one with the same box: plain change and "
        "motion-compensated residual of the inner face over the ring around it, and the jump of the image "
        "model's score), and print as Markdown how well each per-video median tells fakes from reals: ROC-AUC "
        "per source and over all videos, and the held-out log-loss of a Platt fit leaving each identity group "
        "out, beside the base rate's. Reads the videos themselves (about 5 s a video on 2 CPU cores)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weights", required=True, type=Path, help="the image model's .keras file")
        parser.add_argument("--data", type=Path, default=Path(django_settings.UNMASK_DATA_DIR), help="shared data")
        parser.add_argument("--video-sources", default="ffpp,celebdf,celebdf-full", help="video sources")
        parser.add_argument("--frames", type=int, default=32, help="frame pairs sampled per video")
        parser.add_argument("--mirror", action="store_true", help="score each face with its mirror image too")

    def handle(self, *args, **options) -> None:
        from ml.datasets import VIDEO_SUFFIXES, labelled_files
        from ml.faces import CropRule, FaceDetector
        from ml.image_model import feature_model
        from ml.inference import compiled_encoder
        from ml.sources import SOURCES, video_groups
        from ml.temporal import CUES, video_temporal_cues
        from training.crop_checks import load_classifier

        names = source_names(options["video_sources"])
        unknown = [name for name in names if SOURCES.get(name) is None or SOURCES[name].media != "videos"]
        if unknown or not names:
            raise CommandError(f"not video sources: {', '.join(unknown) or '(none)'}")
        if options["frames"] < 2:
            raise CommandError("--frames must be at least 2")
        classifier = load_classifier(options["weights"])
        encoder = compiled_encoder(feature_model(classifier))
        # The shared crop rule at the model's input size, as scans cut faces for it.
        rule = CropRule(margin=0.15, size=int(classifier.inputs[0].shape[1]))

        def score(crops: np.ndarray) -> np.ndarray:
            return encoder(crops, mirror=options["mirror"])[1]

        detector = FaceDetector()
        rows = []
        for name in names:
            try:
                files = labelled_files(SOURCES[name].folder(options["data"]), VIDEO_SUFFIXES)
            except FileNotFoundError as exc:
                raise CommandError(f"{exc} (is --data the shared data folder?)") from exc
            for path, label in files:
                cues = video_temporal_cues(path, detector=detector, score=score, rule=rule, frames=options["frames"])
                if cues is None:
                    self.stderr.write(f"{name}/{path.name}: no face tracked, left out")
                    continue
                rows.append({"source": name, "stem": path.stem, "label": label, **cues.medians()})
        if len({row["label"] for row in rows}) < 2:
            raise CommandError("these videos hold fewer than two classes")
        if len(set(video_groups([row["stem"] for row in rows]).values())) < 2:
            raise CommandError("these videos are of one identity group: nothing to hold out")
        self.stdout.write("\n".join(cue_table(rows, CUES, names, options)))


def cue_table(rows: list[dict], cues: tuple[str, ...], sources: tuple[str, ...], options: dict) -> list[str]:
    """The Markdown lines of the check, one row per cue; `rows` hold each video's source, file stem, label and
    per-video cues, and `options` the command's --weights and --frames."""
    from ml.metrics import log_loss, roc_auc
    from ml.sources import video_groups
    from ml.train_video_crossfit import held_out_platt

    labels = np.asarray([row["label"] for row in rows], dtype=np.float64)
    group_of = video_groups([row["stem"] for row in rows])
    groups = np.asarray([group_of[row["stem"]] for row in rows])
    # The base rate held out the same way (each group's from the other groups' share of fakes): what a cue that
    # carries no evidence scores, and the figure the video card's aggregates are set beside.
    base_rate = np.array([labels[groups != group].mean() for group in groups])
    base = log_loss(labels, base_rate)

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    lines = [
        f"Temporal cues of `{options['weights'].name}` on {len(rows)} videos ({options['frames']} frame pairs each, "
        f"{len(set(groups.tolist()))} identity groups); held-out base-rate log-loss {base:.3f}:",
        "",
        "| cue (per-video median) | ROC-AUC, all | "
        + " | ".join(f"ROC-AUC, {name}" for name in sources)
        + " | held-out log-loss (Platt, leaving each group out) |",
        "|---|---|" + "---|" * len(sources) + "---|",
    ]
    for cue in cues:
        values = np.asarray([row[cue] for row in rows], dtype=np.float64)
        per_source = []
        for name in sources:
            members = np.asarray([row["source"] == name for row in rows])
            per_source.append(cell(roc_auc(labels[members], values[members]) if members.any() else None))
        # Ratios and jumps are positive and skewed: their logarithm is what a Platt fit can use.
        held_out = held_out_platt(np.log(np.maximum(values, 1e-6)), labels, groups)
        lines.append(
            f"| {cue} | {cell(roc_auc(labels, values))} | "
            + " | ".join(per_source)
            + f" | {log_loss(labels, held_out):.3f} |"
        )
    return lines
