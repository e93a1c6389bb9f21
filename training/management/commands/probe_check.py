"""`manage.py probe_check`: does a linear read-out of *frozen* ImageNet features carry over to a source it never
saw better than the fine-tuned network does?

Why ask: the fine-tuned model's leave-one-source-out figures are at or below chance (image card), which says it
learns each data set's look. Ojha et al. ("Towards Universal Fake Image Detectors that Generalize Across
Generative Models", CVPR 2023) found that a linear probe on a feature space never trained to tell real from fake
generalises to unseen generators far better than a fine-tuned network, because it cannot bend the features
towards one data set's shortcuts. They used CLIP; `../shared/weights` holds only the ImageNet MobileNetV2, so this
measures the idea with that backbone: the mean and spatial spread of several of its layers, low-level ones
included (where generator and blending traces live), standardised, read by an L2-regularised logistic regression.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.crop_checks import add_crop_arguments

DEFAULT_LAYERS = "block_3_expand_relu,block_6_expand_relu,block_13_expand_relu,out_relu"
# L2 strengths tried; the one with the lowest log-loss on the training sources' calibration splits is kept.
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)


class Command(BaseCommand):
    help = (
        "Extract frozen ImageNet MobileNetV2 features (per layer in --layers: the spatial mean and standard "
        "deviation of its activations) of every cached crop of the image sources, their video frames and, with "
        "--self-blends, self-blended copies of the training reals; fit a logistic regression on the training "
        "split of all sources, then once without each (leave-one-source-out); print each fit's test ROC-AUC per "
        "source and on the video frames (never trained on) as a Markdown table. Features are cached in "
        "--features-cache, so a second run only refits."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_crop_arguments(parser)
        parser.add_argument(
            "--backbone-weights",
            type=Path,
            default=Path(django_settings.UNMASK_WEIGHTS_DIR) / "mobilenet_v2_1.0_224_no_top.h5",
            help="the ImageNet MobileNetV2 (no top) weights file",
        )
        parser.add_argument("--layers", default=DEFAULT_LAYERS, help="comma-separated MobileNetV2 layer names")
        parser.add_argument("--input-size", type=int, default=160, help="the cached crops' size (the shipped 160 px)")
        parser.add_argument(
            "--self-blends", type=int, default=1, help="self-blended copies per training real (0: none)"
        )
        parser.add_argument(
            "--video-folds",
            action="store_true",
            help="add a row whose probes also train on the video frames of the other folds (whole source groups), "
            "each scoring the frames of the fold it left out: can a reader this small learn from other groups' video?",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--features-cache",
            type=Path,
            default=Path(django_settings.VAR_DIR) / "ml" / "probe-features",
            help="where features are kept",
        )

    def handle(self, *args, **options) -> None:
        from ml.metrics import roc_auc
        from ml.train_sources import SourceTrainingConfig, load_crop_pool
        from training.crop_checks import source_names

        sources = source_names(options["sources"])
        video_sources = source_names(options["video_sources"])
        layers = source_names(options["layers"])
        if not options["backbone_weights"].is_file():
            raise CommandError(f"no backbone weights at {options['backbone_weights']}")
        size = options["input_size"]
        config = SourceTrainingConfig(sources=sources, video_sources=video_sources, input_size=size)
        try:
            pool = load_crop_pool(options["cache"], config, data_dir=options["data"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"{exc} (run prepare_training_data --size {size} first)") from exc

        started = time.monotonic()
        extract = _feature_extractor(options["backbone_weights"], layers, size)
        cache_dir = options["features_cache"] / f"{size}px-{'-'.join(layers)}"
        features = _cached_features(cache_dir / "pool.npz", pool.names, lambda: extract(pool.images))
        blend_rows, blend_features = _self_blend_features(
            pool, sources, options["self_blends"], options["seed"], cache_dir, extract, width=features.shape[1]
        )
        self.stdout.write(f"features: {features.shape[1]} per face, {time.monotonic() - started:.0f} s")

        tests = np.flatnonzero((pool.split == "test") & np.isin(pool.source, sources))
        frames = np.flatnonzero(np.isin(pool.source, video_sources))
        columns = [(f"{name} test", tests[pool.source[tests] == name]) for name in sources]
        columns.append(("frames, all", frames))
        columns += [(f"{name} frames", frames[pool.source[frames] == name]) for name in video_sources]
        lines = [
            "| trained on | L2 | " + " | ".join(title for title, _ in columns) + " |",
            "|---|---|" + "---|" * len(columns),
        ]

        def row(label: str, strengths: str, logits: np.ndarray, bold: str | None = None) -> str:
            """One line of the table: the ROC-AUC of `logits` (one per pool row) in every column."""
            cells = []
            for title, rows in columns:
                auc = roc_auc(pool.labels[rows], logits[rows])
                mark = "**" if title == bold else ""
                cells.append("n/a" if auc is None else f"{mark}{auc:.3f}{mark}")
            return f"| {label} | {strengths} | " + " | ".join(cells) + " |"

        for left_out in (None, *sources):
            kept = tuple(name for name in sources if name != left_out)
            fit = _fit_probe(pool, features, blend_rows, blend_features, kept, seed=options["seed"])
            label = "all sources" if left_out is None else f"without {left_out} (bold: left out)"
            lines.append(row(label, f"{fit.l2:g}", fit(features), bold=f"{left_out} test"))
        if options["video_folds"]:
            logits, strengths = _cross_fitted_logits(
                pool, features, blend_rows, blend_features, sources, frames, tests, seed=options["seed"]
            )
            label = "all sources and the other folds' video frames (frames: out of fold; tests: mean of the folds)"
            lines.append(row(label, strengths, logits))
        self.stdout.write("\n".join(lines))


def _feature_extractor(weights: Path, layers: tuple[str, ...], size: int):
    """A function from uint8 crops (N x size x size x 3) to their frozen features: per layer, the spatial mean and
    standard deviation of its activations, concatenated."""
    import keras
    import tensorflow as tf

    from ml.image_model import imagenet_mobilenet_v2

    # The shipped model's own backbone and preprocessing, never trained here (inference mode below).
    inputs, backbone = imagenet_mobilenet_v2(weights, size, trainable_from=None, seed=0)
    try:
        maps = [backbone.get_layer(name).output for name in layers]
    except ValueError as exc:
        raise CommandError(f"{exc}: give MobileNetV2 layer names in --layers") from exc
    model = keras.Model(inputs, maps)

    @tf.function(reduce_retracing=True)
    def describe(batch):
        outputs = model(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        parts = []
        for output in outputs:
            mean, variance = tf.nn.moments(output, axes=[1, 2])
            parts += [mean, tf.sqrt(variance + 1e-6)]
        return tf.concat(parts, axis=1)

    def extract(images: np.ndarray) -> np.ndarray:
        batches = [describe(images[start : start + 128].astype(np.float32)) for start in range(0, len(images), 128)]
        return np.concatenate([np.asarray(batch) for batch in batches]).astype(np.float32)

    return extract


def _cached_features(path: Path, names: list[str], compute) -> np.ndarray:
    """The features of the crops `names`, from `path` where it holds exactly those, else computed and saved."""
    if path.is_file():
        saved = np.load(path, allow_pickle=False)
        if saved["names"].astype(str).tolist() == list(names):
            return saved["features"]
    features = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=features, names=np.asarray(names))
    return features


def _self_blend_features(pool, sources, copies: int, seed: int, cache_dir: Path, extract, *, width: int):
    """(pool row of the real each blend was made from, the blends' features, `width` per blend): `copies`
    self-blends of every training real with landmarks of `sources`, made with a fixed seed."""
    from ml.self_blend import self_blend

    reals = np.flatnonzero(
        (pool.split == "train") & np.isin(pool.source, sources) & (pool.labels == 0) & pool.has_landmarks
    )
    rows = np.repeat(reals, copies)
    if not len(rows):
        return rows, np.zeros((0, width), dtype=np.float32)
    copy_numbers = np.tile(np.arange(copies), len(reals))
    names = [f"{pool.names[row]}~blend{copy}~seed{seed}" for row, copy in zip(rows, copy_numbers, strict=True)]

    def compute() -> np.ndarray:
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, len(rows), 512):
            chunk = rows[start : start + 512]
            blends = np.stack([self_blend(pool.images[row], pool.landmarks[row], rng) for row in chunk])
            parts.append(extract(blends))
        return np.concatenate(parts)

    return rows, _cached_features(cache_dir / f"self-blends-{copies}-seed{seed}.npz", names, compute)


def _cross_fitted_logits(
    pool, features, blend_rows, blend_features, sources, frames: np.ndarray, tests: np.ndarray, *, seed: int
):
    """(logit per pool row, the L2 strengths chosen): one probe per video fold, trained on the image sources and
    the frames of the other folds; each scores the frames of its own fold, and the image test rows get the mean
    of the folds' logits."""
    logits = np.zeros(len(pool.labels))
    folds = sorted({str(value) for value in pool.split[frames]})
    strengths = []
    for fold in folds:
        held_out = frames[pool.split[frames] == fold]
        fit = _fit_probe(
            pool,
            features,
            blend_rows,
            blend_features,
            sources,
            seed=seed,
            extra_rows=frames[pool.split[frames] != fold],
        )
        logits[held_out] = fit(features[held_out])
        logits[tests] += fit(features[tests]) / len(folds)
        strengths.append(f"{fit.l2:g}")
    return logits, "/".join(strengths)


def _fit_probe(
    pool, features, blend_rows, blend_features, sources: tuple[str, ...], *, seed: int, extra_rows: np.ndarray = ()
):
    """A logistic regression on the standardised features of the training split of `sources` (and the
    self-blends of their reals), each source's reals, its fakes and the self-blends weighing the same; its L2
    strength chosen by log-loss on the calibration split of `sources`; `extra_rows` (video frames) join the
    training rows, weighed per source and label alike. Returns a scorer (features -> logits) with the chosen
    `l2` as an attribute."""
    from ml.metrics import log_loss, sigmoid
    from ml.train_sources import balanced_weights

    train = np.flatnonzero((pool.split == "train") & np.isin(pool.source, sources))
    train = np.concatenate([train, np.asarray(extra_rows, dtype=train.dtype)])
    calibration = np.flatnonzero((pool.split == "calibration") & np.isin(pool.source, sources))
    blends = np.isin(pool.source[blend_rows], sources)
    x = np.concatenate([features[train], blend_features[blends]])
    y = np.concatenate([pool.labels[train], np.ones(int(blends.sum()), dtype=np.int32)])
    cells = np.concatenate(
        [
            [f"{source}/{label}" for source, label in zip(pool.source[train], pool.labels[train], strict=True)],
            np.full(int(blends.sum()), "self-blended"),
        ]
    )
    weights = balanced_weights(cells)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6

    best = None
    for l2 in L2_GRID:
        coefficients, intercept = _logistic_regression((x - mean) / scale, y, weights, l2=l2, seed=seed)
        logits = ((features[calibration] - mean) / scale) @ coefficients + intercept
        loss = log_loss(pool.labels[calibration], sigmoid(logits))
        if best is None or loss < best[0]:
            best = (loss, l2, coefficients, intercept)
    _, l2, coefficients, intercept = best

    def score(rows_features: np.ndarray) -> np.ndarray:
        return ((rows_features - mean) / scale) @ coefficients + intercept

    score.l2 = l2
    return score


def _logistic_regression(x: np.ndarray, y: np.ndarray, weights: np.ndarray, *, l2: float, seed: int):
    """Weighted L2-regularised logistic regression by full-batch gradient descent with Adam in TensorFlow (the
    loss is convex, so the optimiser only decides how fast it gets there): (coefficients, intercept)."""
    import tensorflow as tf

    tf.random.set_seed(seed)
    x_t = tf.constant(x, tf.float32)
    y_t = tf.constant(y, tf.float32)
    w_t = tf.constant(weights / weights.sum(), tf.float32)
    coefficients = tf.Variable(tf.zeros(x.shape[1]))
    intercept = tf.Variable(0.0)
    optimiser = tf.keras.optimizers.Adam(learning_rate=0.05)

    @tf.function(autograph=False)  # no Python control flow to convert
    def step():
        with tf.GradientTape() as tape:
            logits = tf.linalg.matvec(x_t, coefficients) + intercept
            losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_t, logits=logits)
            loss = tf.reduce_sum(w_t * losses) + l2 * tf.reduce_sum(coefficients**2)
        variables = [coefficients, intercept]
        optimiser.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    for _ in range(600):
        step()
    return coefficients.numpy().astype(np.float64), float(intercept.numpy())
