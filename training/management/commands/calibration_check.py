"""`manage.py calibration_check`: would calibrating each kind of fake apart make the probabilities truer?

The shipped image model maps every face's logit through one isotonic calibration, fitted on all sources
together. GAN and diffusion fakes sit at high logits and face swaps near the reals, so that one map leaves DFDC's
swaps in the uncertain band (none called fake). The manipulation head already says which kind of fake a face
most resembles, for reals too; this check fits one calibration per kind the head names (each over the
calibration faces it names that kind, sources weighing equally) and compares it with the shipped map, at
thresholds chosen by the shipped rule, on every held-out source. Not shipped: the image card says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.crop_checks import add_crop_arguments

if TYPE_CHECKING:
    from ml.calibration import LogitCalibration

# A kind the head names for fewer calibration faces than this, or for one class only, falls back to the shared
# map: an isotonic fit on a few dozen faces is noise.
MIN_ROWS_PER_KIND = 30


def pooled_calibration(logits: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> LogitCalibration:
    """The shipped rule: one isotonic map over every calibration face, sources weighing equally."""
    from ml.calibration import fit_isotonic_calibration
    from ml.train_sources import balanced_weights

    return fit_isotonic_calibration(logits, labels, weights=balanced_weights(sources))


def per_kind_maps(
    logits: np.ndarray, labels: np.ndarray, sources: np.ndarray, kinds: np.ndarray, *, shared: LogitCalibration
) -> list[LogitCalibration]:
    """One isotonic map per kind the manipulation head names (`kinds`: its N x K softmax), each fitted on the
    faces it names that kind; `shared` (the pooled map) stands in for a kind with too few faces."""
    from ml.calibration import fit_isotonic_calibration
    from ml.train_sources import balanced_weights

    named = kinds.argmax(axis=1)
    maps = []
    for kind in range(kinds.shape[1]):
        members = named == kind
        if members.sum() >= MIN_ROWS_PER_KIND and len(set(labels[members].tolist())) == 2:
            maps.append(
                fit_isotonic_calibration(logits[members], labels[members], weights=balanced_weights(sources[members]))
            )
        else:
            maps.append(shared)
    return maps


def through_maps(maps: list[LogitCalibration], logits: np.ndarray, kinds: np.ndarray, *, soft: bool) -> np.ndarray:
    """Fake probabilities of faces through per-kind `maps`. Hard: each face through the map of its most likely
    kind; soft: the head's probabilities (`kinds`) weigh the maps."""
    each = np.stack([calibration.probabilities(logits) for calibration in maps], axis=1)
    if soft:
        return (each * kinds).sum(axis=1)
    return each[np.arange(len(each)), kinds.argmax(axis=1)]


class Command(BaseCommand):
    help = (
        "Fit the image model's calibration on the cached calibration splits three ways (the shipped single "
        "isotonic map; one map per kind of fake the manipulation head names, hard and soft), choose each one's "
        "threshold by the shipped rule, and print as Markdown, per held-out source (image test splits and every "
        "video frame), the expected calibration error, the false-positive rate and the share of fakes called "
        "fake at that threshold, and the ECE of all held-out faces together. Video frames are scored by the "
        "model itself, so --weights must be a model that never trained on them (the shipped recipe has no video "
        "stage)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weights", required=True, type=Path, help="the image model's .keras file")
        add_crop_arguments(parser)
        parser.add_argument("--mirror", action="store_true", help="score each face with its mirror image too")

    def handle(self, *args, **options) -> None:
        from ml.metrics import choose_threshold_capped
        from ml.metrics import expected_calibration_error as ece
        from ml.train_sources import predict_rows
        from training.crop_checks import model_and_crops_of

        classifier, pool, sources, video_sources = model_and_crops_of(options)
        is_video = np.isin(pool.source, video_sources)
        calibration_rows = np.flatnonzero((pool.split == "calibration") & ~is_video)
        held_out_rows = np.flatnonzero((pool.split == "test") | is_video)
        if len(set(pool.labels[calibration_rows].tolist())) < 2 or not len(held_out_rows):
            raise CommandError("the cache holds too few calibration or held-out crops of these sources")
        fitted = predict_rows(classifier, pool, calibration_rows, mirror=options["mirror"])
        scored = predict_rows(classifier, pool, held_out_rows, mirror=options["mirror"])
        if not fitted["manipulation"].shape[1]:
            raise CommandError(f"{options['weights'].name} has no manipulation head")
        labels, names = pool.labels[held_out_rows], pool.source[held_out_rows]
        fit_args = (fitted["logits"], pool.labels[calibration_rows], pool.source[calibration_rows])
        shared = pooled_calibration(*fit_args)
        maps = per_kind_maps(*fit_args, fitted["manipulation"], shared=shared)
        # Each method maps (logits, the head's probabilities) to fake probabilities.
        methods = {
            "one map (shipped)": lambda logits, kinds: shared.probabilities(logits),
            "one map per kind, hard": lambda logits, kinds: through_maps(maps, logits, kinds, soft=False),
            "one map per kind, soft": lambda logits, kinds: through_maps(maps, logits, kinds, soft=True),
        }
        lines = [
            f"Calibration of `{options['weights'].name}` fitted on {len(calibration_rows)} cached calibration crops, "
            f"measured on {len(held_out_rows)} held-out faces"
            + (", each scored with its mirror image" if options["mirror"] else "")
            + " (ECE / false-positive rate / fakes called fake, at each method's threshold):",
            "",
            "| held-out | faces (fake) | " + " | ".join(methods) + " |",
            "|---|---|" + "---|" * len(methods),
        ]
        probabilities, thresholds = {}, {}
        for method, calibrate in methods.items():
            thresholds[method] = choose_threshold_capped(
                fit_args[1], calibrate(fit_args[0], fitted["manipulation"]), fit_args[2]
            )
            probabilities[method] = calibrate(scored["logits"], scored["manipulation"])
        for name in [*sources, *video_sources]:
            members = names == name
            if not members.any():
                continue
            cells = []
            for method in methods:
                p, cut = probabilities[method][members], thresholds[method]
                real, fake = labels[members] == 0, labels[members] == 1
                false_positive = f"{(p[real] >= cut).mean():.3f}" if real.any() else "n/a"
                caught = f"{(p[fake] >= cut).mean():.3f}" if fake.any() else "n/a"
                cells.append(f"{ece(labels[members], p):.3f} / {false_positive} / {caught}")
            lines.append(
                f"| {name} | {int(members.sum())} ({int(labels[members].sum())}) | " + " | ".join(cells) + " |"
            )
        lines.append(
            "| all held-out (ECE) | "
            + f"{len(labels)} ({int(labels.sum())}) | "
            + " | ".join(
                f"{ece(labels, probabilities[method]):.3f} (threshold {thresholds[method]:.3f})" for method in methods
            )
            + " |"
        )
        self.stdout.write("\n".join(lines))
