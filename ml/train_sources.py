"""Training the image model on every source at once: a balanced mixture, self-blended faces, cross-fitted video folds.

The recipe (`SourceTrainingConfig`), run by `manage.py train_image_model --sources ...`:

1. **Stage 1, image sources.** An ImageNet-pretrained backbone is fine-tuned on a mixture of *streams*
   drawn in fixed proportions, whatever their sizes: the real faces of each image source, the fakes of each,
   and self-blended pseudo-fakes (`ml.self_blend`) made afresh from the real faces of every source. Half of
   every batch is real, half fake, and within each half every stream weighs the same, so the 250-image
   diffusion set counts as much as the 6,000 DFDC crops and no source's file properties can decide.
   The same augmentation (`ml.augment`) is applied to every stream; with `sharpness_matching`, a drawn crop is
   first blurred to the focus of its source's other class (`ml.sharpness`), so focus cannot separate them.
2. **Stage 2, video frames, cross-fitted: off by default.** By default (`stage2_steps=0`, the shipped recipe
   since 2026-12-03: `make train`) the run's model is stage 1, which never saw a video, and its scores of the
   frames are the held-out ones the video model trains on. With `stage2_steps > 0` (the 12-02 recipe used
   500), a short fine-tune from stage 1 on the mixture plus video frames and self-blends of real frames runs
   once per fold of whole video groups (`ml.sources.VIDEO_FOLDS`), each scoring the frames of the fold it left
   out, and once on every video group: that last one is the run's model, and every video-frame figure stays
   out-of-fold. Measured, the video stage made the frames of unseen groups rank worse (16 identity groups teach
   identities more than seams; the image model card, *Stage 1 alone*).
3. **Decision.** Isotonic calibration (`ml.calibration`), the threshold (capped at a 5% false-positive rate on every real source)
   and the uncertain band are chosen on the `calibration` split of every image source, each source weighing
   the same. The out-of-fold video frames are reported, and are what the video model calibrates its own
   per-person verdict on, but stay out of the photo decision.

With `resynthesised` (off), stage 1 also draws pseudo-fakes re-synthesised from its real faces by a small
upsampling autoencoder (`ml.resynthesis`): measured on 2026-12-06, it made every left-out figure worse (image card).
With `cross_blended` (off), stage 1 also draws pseudo-swaps pasting one real person's inner face onto another's
(`ml.self_blend.cross_blend`, after Face X-ray): measured on 2026-12-07 (image card).

A second head learns which kind of fake a face is (`ml.image_model.MANIPULATION_TYPES`) from the sources'
labels, on fakes only; it never touches the verdict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ml.augment import AugmentConfig, augment_crop
from ml.calibration import fit_isotonic_calibration
from ml.datasets import cache_video_faces, crop_rule_of, load_face_crops
from ml.faces import CropRule
from ml.image_model import (
    BACKBONES,
    MANIPULATION_TYPES,
    PRETRAINED_BACKBONES,
    ImageModel,
    encode_in_batches,
    feature_model,
    load_keras_model,
)
from ml.metrics import (
    binary_report,
    cap_real_verdicts,
    choose_threshold_capped,
    choose_uncertain_band,
    roc_auc,
)
from ml.resynthesis import refocused_like, resynthesise, train_resynthesiser
from ml.self_blend import cross_blend, landmark_shape, nearest_in_pose, self_blend
from ml.sharpness import SharpnessMatching, sharpness
from ml.sources import IMAGE_SOURCES, SOURCES, VIDEO_FOLDS, VIDEO_SOURCES, deal_folds

Progress = Callable[[str], None]
VIDEO_STREAM = "videos"
SELF_BLENDED_STREAM = "self-blended"
CROSS_BLENDED_STREAM = "cross-blended"
# Donor candidates drawn per cross-blend; the nearest in pose is pasted (Face X-ray searched a whole set; a
# couple of dozen random faces already give a donor whose eyes and mouth sit where the target's do).
CROSS_BLEND_CANDIDATES = 24
RESYNTHESISED_STREAM = "resynthesised"


# Augmentation shared by every stream. Lighter than v1's (`AugmentConfig()`): downscaling to 30% and JPEG
# quality 30 erase the blending seam self-blended and swapped faces are learnt from, and since the same
# degradations reach every stream, no file property separates real from fake.
MIXTURE_AUGMENT = AugmentConfig(
    rescale_probability=0.5,
    rescale_factor=(0.45, 1.0),
    blur_probability=0.25,
    blur_sigma=(0.3, 1.2),
    sharpen_probability=0.1,
    noise_probability=0.15,
    jpeg_probability=0.8,
    jpeg_quality=(45, 97),
)

# Only what video compression and re-sharing do to a face (mild JPEG, slight rescaling and blur): keeps the
# finest blending and upsampling traces, at the price of weaker protection against file-property shortcuts,
# which the re-encoded evaluation rows check.
LIGHT_AUGMENT = AugmentConfig(
    reframe_probability=0.5,
    # From a bare face box (0.65 of the crop is tighter than MTCNN's box) to the full margin, and bars over two
    # edges: without them a tight, letterboxed crop (a face filling a padded frame, as in the Celeb-DF clips)
    # cut the previous model's DFDC ROC-AUC from 0.83 to 0.62 and StyleGAN's from 1.00 to 0.86.
    reframe_zoom=(0.65, 1.0),
    border_probability=0.2,
    rescale_probability=0.25,
    rescale_factor=(0.6, 1.0),
    blur_probability=0.1,
    blur_sigma=(0.3, 0.8),
    sharpen_probability=0.05,
    colour_probability=0.6,
    noise_probability=0.1,
    jpeg_probability=0.6,
    jpeg_quality=(60, 98),
)
AUGMENTATIONS = {"mixture": MIXTURE_AUGMENT, "light": LIGHT_AUGMENT, "v1": AugmentConfig()}


@dataclass(frozen=True)
class SourceTrainingConfig:
    """Everything that decides a training run, stored in its metrics.json."""

    backbone: str = "mobilenet_v2"
    backbone_options: dict = field(default_factory=lambda: {"trainable_from": PRETRAINED_BACKBONES["mobilenet_v2"]})
    input_size: int = 160
    embedding_dim: int = 128
    dropout: float = 0.3
    batch_size: int = 32
    stage1_steps: int = 3800
    stage1_learning_rate: float = 3e-4
    stage2_steps: int = 0
    stage2_learning_rate: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 1e-5
    manipulation_loss_weight: float = 0.3
    # Draw factors per stream (see `stream_weights`); face swaps are the hardest fakes to learn from few crops.
    stream_emphasis: dict = field(default_factory=lambda: {"dfdc-faces": 3.0, "self-blended": 2.0, "videos": 3.0})
    sources: tuple[str, ...] = IMAGE_SOURCES
    video_sources: tuple[str, ...] = VIDEO_SOURCES
    self_blended: bool = True
    folds: int = VIDEO_FOLDS
    cross_fit: bool = True
    # Stage 2 on the videos' fake frames too (True), or on their real frames and self-blends of them only. With
    # 16 identity groups, a fake video's frames teach "this identity is fake" as much as any seam; a real frame
    # and its self-blend share the identity, so only the blend can tell them apart (the SBI argument).
    video_fakes: bool = True
    # How often a drawn crop is blurred to the focus of the other class of its source (`ml.sharpness`), so that
    # blur cannot stand in for a seam; 0 turns it off (the recipe before 2026-12-03).
    sharpness_matching: float = 0.0
    # Self-blends whose inner face is as often sharper than the real face as blurrier (`ml.self_blend`); off,
    # four in five are blurrier, which teaches "a blurry face is fake" (the recipe before 2026-12-03).
    even_blend_focus: bool = False
    # A stream of blends of two different people's real faces (`ml.self_blend.cross_blend`, after Face X-ray):
    # the identity, light and colour changes of a real swap beside the seam the self-blends teach. Off in the
    # shipped recipe (an experiment of 2026-12-07: image card).
    cross_blended: bool = False
    # A stream of pseudo-fakes re-synthesised from the training reals by an upsampling autoencoder
    # (`ml.resynthesis`), trained for `resynthesis_steps` before stage 1; off in the shipped recipe (an experiment
    # of 2026-12-06 against the leave-one-source-out figures: image card).
    resynthesised: bool = False
    resynthesis_steps: int = 400
    # Score every face as the mean logit of itself and its mirror image, in the decision, the held-out figures,
    # the frames handed to the video model and every scan (the version's `test_time_flip` setting). Measured on
    # the 2026-12-03 weights: DFDC 0.837 -> 0.849, out-of-fold frames 0.664 -> 0.675, at twice the per-face work
    # (image card, *Test-time flipping*). Off, a run scores as runs before 2026-12-06 did.
    test_time_flip: bool = True
    max_false_positive_rate: float = 0.05
    # At most this share of any source's calibration fakes may fall under the band (a `real` verdict): stricter
    # than the false-positive cap, since a face swap called real is the answer a reviewer does not check. At 5%,
    # 6.3% of the held-out DFDC swaps were called real.
    max_miss_rate: float = 0.02
    augment: AugmentConfig = LIGHT_AUGMENT
    seed: int = 0

    @property
    def crop_rule(self) -> CropRule:
        """The shared crop rule at this run's input size."""
        return CropRule(margin=0.15, size=self.input_size)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["sources"] = list(self.sources)
        values["video_sources"] = list(self.video_sources)
        return values


# --- the crops of every source, with what splits and balances them ------------------------------------------


@dataclass
class CropPool:
    """Every cached face crop of the chosen sources in one set of arrays (row i is one face).

    `split` is `train` / `calibration` / `test` for image sources and `fold<k>` for video frames;
    `unit` groups rows that are one draw (a video's frames: a video weighs the same whatever its length);
    `manipulation` is the index in MANIPULATION_TYPES of a fake's kind, -1 for a real face.
    """

    images: np.ndarray
    labels: np.ndarray
    landmarks: np.ndarray
    source: np.ndarray
    split: np.ndarray
    group: np.ndarray
    unit: np.ndarray
    manipulation: np.ndarray
    names: list[str]

    @property
    def has_landmarks(self) -> np.ndarray:
        return np.isfinite(self.landmarks).all(axis=(1, 2))

    @cached_property
    def sharpness(self) -> np.ndarray:
        """`ml.sharpness.sharpness` of every row, computed once (about a second per 10,000 crops)."""
        return sharpness(self.images)


def load_crop_pool(
    cache_root: Path, config: SourceTrainingConfig, *, data_dir: Path, progress: Progress | None = None
) -> CropPool:
    """The crops of `config`'s sources and video sources that `prepare_training_data` cached under `cache_root`,
    cut by its crop rule, with split, group and fold (of `config.folds`) per row."""
    say = progress or (lambda message: None)
    sources, video_sources, rule, folds = config.sources, config.video_sources, config.crop_rule, config.folds
    parts: dict[str, list] = {key: [] for key in CropPool.__dataclass_fields__}
    kinds = {name: MANIPULATION_TYPES.index(SOURCES[name].fake_type) for name in (*sources, *video_sources)}

    def add(images, labels, landmarks, source, splits, groups, units, names) -> None:
        count = len(labels)
        parts["images"].append(images)
        parts["labels"].append(np.asarray(labels, dtype=np.int32))
        parts["landmarks"].append(np.asarray(landmarks, dtype=np.float32))
        parts["source"].append(np.full(count, source, dtype=object))
        parts["split"].append(np.asarray(splits, dtype=object))
        parts["group"].append(np.asarray(groups, dtype=object))
        parts["unit"].append(np.asarray(units, dtype=object))
        parts["manipulation"].append(np.where(np.asarray(labels) == 1, kinds[source], -1).astype(np.int32))
        parts["names"].append(list(names))

    for name in sources:
        source = SOURCES[name]
        for part in source.parts:
            cache = cache_root / name / part
            if crop_rule_of(cache) != rule:
                raise ValueError(
                    f"{cache} was cut with another crop rule; run prepare_training_data --size {rule.size}"
                )
            crops = load_face_crops(cache)
            splits = [source.split_of(data_dir, part, relative) for relative in crops.sources]
            groups = [source.group_of(data_dir, part, relative) for relative in crops.sources]
            names = [f"{name}/{part}/{relative}" if part else f"{name}/{relative}" for relative in crops.sources]
            add(crops.images, crops.labels, crops.landmarks, name, splits, groups, names, names)
            say(f"{name}{'/' + part if part else ''}: {len(crops.labels)} crops ({int(crops.labels.sum())} fake)")
    if video_sources:
        videos = cache_video_faces(
            [SOURCES[name].folder(data_dir) for name in video_sources],
            cache_root / "videos",
            rule=rule,
            max_frames=None,
        )
        counts: dict[str, list[int]] = {}
        for video in videos:
            counts.setdefault(video.group, [0, 0])[video.label] += 1
        fold_of = deal_folds({group: (reals, fakes) for group, (reals, fakes) in counts.items()}, folds)
        for video in videos:
            frames = len(video.frame_indices)
            if frames == 0:
                say(f"{video.name}: no face tracked, left out")
                continue
            source = next(name for name in video_sources if SOURCES[name].folder(data_dir).name == video.source)
            unit = f"{source}/{video.name}"
            add(
                video.crops,
                np.full(frames, video.label),
                video.landmarks,
                source,
                np.full(frames, f"fold{fold_of[video.group]}", dtype=object),
                np.full(frames, video.group, dtype=object),
                np.full(frames, unit, dtype=object),
                [f"{unit}#{index}" for index in video.frame_indices],
            )
        say(
            f"videos: {len(videos)} videos, {sum(len(v.frame_indices) for v in videos)} frames, "
            f"{len(counts)} groups in {folds} folds"
        )
    return CropPool(
        images=np.concatenate(parts["images"]),
        labels=np.concatenate(parts["labels"]),
        landmarks=np.concatenate(parts["landmarks"]),
        source=np.concatenate(parts["source"]),
        split=np.concatenate(parts["split"]),
        group=np.concatenate(parts["group"]),
        unit=np.concatenate(parts["unit"]),
        manipulation=np.concatenate(parts["manipulation"]),
        names=[name for names in parts["names"] for name in names],
    )


# --- the balanced mixture -------------------------------------------------------------------------------------


@dataclass
class Stream:
    """Rows of the pool drawn as one stream: a unit (one crop, or one video) uniformly, then a row of it.
    `self_blended` streams are real rows turned into pseudo-fakes when drawn; `cross_blended` ones, real rows
    given the inner face of another person's real row."""

    name: str
    units: list[np.ndarray]
    label: int
    self_blended: bool = False
    cross_blended: bool = False
    # For a re-synthesised stream (one unit): the autoencoder's reconstruction of each of its rows, in order.
    resynthesised: np.ndarray | None = None


def mixture_streams(
    pool: CropPool,
    rows: np.ndarray,
    *,
    self_blended: bool,
    cross_blended: bool = False,
    resynthesised: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Stream]:
    """One real and one fake stream per source among `rows` (video sources pooled into one pair), a
    self-blended stream over every real row with landmarks, with `cross_blended` a stream of blends of two
    people's real rows, and with `resynthesised` (real rows and their autoencoder reconstructions,
    `ml.resynthesis`) a stream of those reconstructions as fakes."""
    rows = np.asarray(rows)
    streams = []
    source_names = sorted({str(name) for name in pool.source[rows]})
    image_sources = [name for name in source_names if SOURCES[name].media == "images"]
    video_rows = rows[np.isin(pool.source[rows], [name for name in source_names if name not in image_sources])]
    for name, members in [(name, rows[pool.source[rows] == name]) for name in image_sources] + [
        (VIDEO_STREAM, video_rows)
    ]:
        for label in (0, 1):
            chosen = members[pool.labels[members] == label]
            if len(chosen) == 0:
                continue
            units: dict[str, list[int]] = {}
            for row in chosen:
                units.setdefault(str(pool.unit[row]), []).append(int(row))
            streams.append(
                Stream(
                    name=f"{name}:{'fake' if label else 'real'}",
                    units=[np.asarray(unit) for unit in units.values()],
                    label=label,
                )
            )
    if self_blended:
        reals = rows[(pool.labels[rows] == 0) & pool.has_landmarks[rows]]
        if len(reals):
            streams.append(Stream(name=SELF_BLENDED_STREAM, units=[reals], label=1, self_blended=True))
    if cross_blended:
        reals = rows[(pool.labels[rows] == 0) & pool.has_landmarks[rows]]
        if len(np.unique(pool.unit[reals])) > 1:
            streams.append(Stream(name=CROSS_BLENDED_STREAM, units=[reals], label=1, cross_blended=True))
    if resynthesised is not None and len(resynthesised[0]):
        real_rows, images = resynthesised
        streams.append(Stream(name=RESYNTHESISED_STREAM, units=[np.asarray(real_rows)], label=1, resynthesised=images))
    return streams


def stage2_streams(pool: CropPool, image_rows: np.ndarray, video_rows: np.ndarray, config: SourceTrainingConfig):
    """Stage 2's streams: the image mixture plus `video_rows`, or only their real frames where the recipe keeps
    the videos' fakes out (`config.video_fakes`); the self-blended stream then covers the real frames too."""
    if not config.video_fakes:
        video_rows = video_rows[pool.labels[video_rows] == 0]
    return mixture_streams(
        pool,
        np.concatenate([image_rows, video_rows]),
        self_blended=config.self_blended,
        cross_blended=config.cross_blended,
    )


def stream_weights(streams: list[Stream], emphasis: dict[str, float] | None = None) -> np.ndarray:
    """Half the draws real, half fake; within each half every stream weighs the same, times its `emphasis`.

    `emphasis` maps a source name (both its streams), `videos` or `self-blended` to a factor, so the kinds of
    fake that are hard to learn can be drawn more often while every source keeps a fixed, stated share.
    """
    emphasis = emphasis or {}
    factors = np.asarray([emphasis.get(stream.name.split(":", 1)[0], 1.0) for stream in streams], dtype=np.float64)
    labels = np.asarray([stream.label for stream in streams])
    weights = np.zeros(len(streams))
    for label in (0, 1):
        members = labels == label
        weights[members] = 0.5 * factors[members] / factors[members].sum()
    return weights


def mixture_batches(
    pool: CropPool,
    streams: list[Stream],
    *,
    steps: int,
    batch_size: int,
    augment: AugmentConfig,
    seed: int,
    emphasis: dict[str, float] | None = None,
    matching: SharpnessMatching | None = None,
    even_blend_focus: bool = False,
):
    """A Keras PyDataset of `steps` freshly drawn, augmented batches: (crops, {logit, manipulation}).

    With `matching`, a drawn crop is first softened to its source's other class's focus; a self-blend is made
    from a real crop softened as a real crop is, so the pair differs by the blend alone."""
    import keras

    weights = stream_weights(streams, emphasis)
    face_swap = MANIPULATION_TYPES.index("face_swap")
    # Pose descriptors of every real row a cross-blended stream may take a donor from, computed once.
    donor_shapes = {
        number: np.stack([landmark_shape(pool.landmarks[row]) for row in stream.units[0]])
        for number, stream in enumerate(streams)
        if stream.cross_blended
    }

    def donor_for(stream_number: int, row: int, rng: np.random.Generator) -> int:
        """A real row of another unit (another person or video) nearest in pose among a few drawn at random."""
        candidates = streams[stream_number].units[0]
        drawn = rng.integers(len(candidates), size=CROSS_BLEND_CANDIDATES)
        drawn = drawn[pool.unit[candidates[drawn]] != pool.unit[row]]
        if len(drawn) == 0:
            drawn = np.flatnonzero(pool.unit[candidates] != pool.unit[row])[:1]
        shapes = donor_shapes[stream_number]
        return int(candidates[drawn[nearest_in_pose(landmark_shape(pool.landmarks[row]), shapes[drawn])]])

    class MixtureBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            # Two threads draw and augment batches while TensorFlow trains on the previous ones (OpenCV
            # and NumPy release the GIL); threads, not processes, so the crop arrays are shared, not copied.
            super().__init__(workers=2, use_multiprocessing=False, max_queue_size=8)

        def __len__(self) -> int:
            return steps

        def __getitem__(self, batch_number: int):
            # Each batch has its own seed, so the draw does not depend on which thread makes it.
            rng = np.random.default_rng([seed, batch_number])
            choices = rng.choice(len(streams), size=batch_size, p=weights)
            images = np.empty((batch_size, *pool.images.shape[1:]), dtype=np.uint8)
            labels = np.empty(batch_size, dtype=np.float32)
            kinds = np.empty(batch_size, dtype=np.int32)
            for position, stream_number in enumerate(choices):
                stream = streams[stream_number]
                unit = stream.units[int(rng.integers(len(stream.units)))]
                drawn = int(rng.integers(len(unit)))
                row = int(unit[drawn])
                crop = pool.images[row]
                if matching is not None:
                    crop = matching.apply(crop, pool.source[row], pool.labels[row], rng)
                if stream.self_blended:
                    crop = self_blend(crop, pool.landmarks[row], rng, even_focus=even_blend_focus)
                    kinds[position] = face_swap
                elif stream.cross_blended:
                    donor = donor_for(int(stream_number), row, rng)
                    crop = cross_blend(
                        crop,
                        pool.landmarks[row],
                        pool.images[donor],
                        pool.landmarks[donor],
                        rng,
                        even_focus=even_blend_focus,
                    )
                    kinds[position] = face_swap
                elif stream.resynthesised is not None:
                    crop = refocused_like(stream.resynthesised[drawn], crop, rng)
                    # Generated, but neither of the kinds the second head names: no manipulation type to learn.
                    kinds[position] = -1
                else:
                    kinds[position] = pool.manipulation[row]
                images[position] = augment_crop(crop, rng, augment)
                labels[position] = stream.label
            return images.astype(np.float32), {"logit": labels.reshape(-1, 1), "manipulation": kinds}

    return MixtureBatches()


def _masked_manipulation_loss(kinds, probabilities):
    """Cross-entropy of the manipulation head on fakes only (real faces have kind -1 and no type to learn)."""
    import keras
    from keras import ops

    kinds = ops.reshape(kinds, (-1,))
    known = ops.cast(kinds >= 0, "float32")
    return keras.losses.sparse_categorical_crossentropy(ops.maximum(kinds, 0), probabilities) * known


def build_classifier(config: SourceTrainingConfig, *, backbone_weights: Path | None):
    """A fresh classifier of the configured backbone, head and manipulation types."""
    builder = BACKBONES[config.backbone]
    options = dict(config.backbone_options)
    if config.backbone in PRETRAINED_BACKBONES:
        if backbone_weights is None or not Path(backbone_weights).is_file():
            raise FileNotFoundError(f"the MobileNetV2 backbone needs its ImageNet weights file: {backbone_weights}")
        options["backbone_weights"] = backbone_weights
    return builder(
        input_size=config.input_size,
        embedding_dim=config.embedding_dim,
        dropout=config.dropout,
        manipulation_types=MANIPULATION_TYPES,
        seed=config.seed,
        **options,
    )


def train_stage(
    classifier,
    pool: CropPool,
    streams: list[Stream],
    *,
    steps: int,
    learning_rate: float,
    config: SourceTrainingConfig,
    seed: int,
    label: str,
    progress: Progress,
    report_every: int = 250,
) -> list[dict]:
    """Fine-tune `classifier` in place for `steps` batches of the mixture; returns the logged curve."""
    import keras

    warmup = min(config.warmup_steps, max(1, steps // 5))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - warmup), warmup_target=learning_rate, warmup_steps=warmup, alpha=0.02
    )
    classifier.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss={"logit": keras.losses.BinaryCrossentropy(from_logits=True), "manipulation": _masked_manipulation_loss},
        loss_weights={"logit": 1.0, "manipulation": config.manipulation_loss_weight},
    )
    matching = None
    if config.sharpness_matching > 0:
        rows = np.concatenate(
            [unit for stream in streams if not (stream.self_blended or stream.cross_blended) for unit in stream.units]
        )
        values = pool.sharpness[rows]
        matching = SharpnessMatching(
            pool.source[rows], pool.labels[rows], values, probability=config.sharpness_matching
        )
        progress(f"{label}: sharpness matching p={config.sharpness_matching}, medians {matching.medians()}")
    curve: list[dict] = []
    started = time.monotonic()
    chunk = max(1, min(report_every, steps))
    done = 0
    # Run as `epochs` of `chunk` steps so progress is reported as training goes; each chunk draws new batches.
    while done < steps:
        this_chunk = min(chunk, steps - done)
        batches = mixture_batches(
            pool,
            streams,
            steps=this_chunk,
            batch_size=config.batch_size,
            augment=config.augment,
            seed=seed * 100_003 + done,
            emphasis=config.stream_emphasis,
            matching=matching,
            even_blend_focus=config.even_blend_focus,
        )
        history = classifier.fit(batches, epochs=1, verbose=0)
        done += this_chunk
        loss = float(history.history["loss"][-1])
        curve.append({"step": done, "loss": loss, "seconds": round(time.monotonic() - started, 1)})
        rate = done * config.batch_size / max(time.monotonic() - started, 1e-6)
        progress(f"{label}: step {done}/{steps} loss {loss:.4f} ({rate:.0f} crops/s)")
    return curve


def predict_rows(
    classifier, pool: CropPool, rows: np.ndarray, *, batch_size: int = 128, mirror: bool = False
) -> dict[str, np.ndarray]:
    """Raw logits, embeddings and manipulation probabilities of the model on pool rows (no augmentation); with
    `mirror`, each the mean over the crop and its mirror image, as a version with `test_time_flip` scores."""
    import tensorflow as tf

    encoder = feature_model(classifier)
    call = tf.function(lambda crops: encoder(crops, training=False), reduce_retracing=True)
    embeddings, logits, kinds = encode_in_batches(
        call,
        pool.images[rows],
        embedding_dim=int(encoder.outputs[0].shape[-1]),
        batch_size=batch_size,
        mirror=mirror,
    )
    return {
        "logits": logits,
        "embeddings": embeddings,
        "manipulation": (kinds if kinds is not None else np.zeros((len(logits), 0))).astype(np.float32),
    }


def auc_by_source(pool: CropPool, rows: np.ndarray, logits: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC of raw logits per source among `rows` (None where a source has one class there)."""
    figures = {}
    for name in sorted({str(value) for value in pool.source[rows]}):
        members = pool.source[rows] == name
        auc = roc_auc(pool.labels[rows][members], logits[members])
        figures[name] = None if auc is None else round(auc, 4)
    return figures


def self_blended_rows_auc(
    classifier, pool: CropPool, rows: np.ndarray, seed: int, *, even_focus: bool = False
) -> float | None:
    """ROC-AUC on the real faces of `rows` against one fixed self-blended copy of each: is the seam learnt?"""
    reals = rows[(pool.labels[rows] == 0) & pool.has_landmarks[rows]]
    if len(reals) == 0:
        return None
    rng = np.random.default_rng(seed)
    blended = np.stack([self_blend(pool.images[row], pool.landmarks[row], rng, even_focus=even_focus) for row in reals])
    import tensorflow as tf

    encoder = feature_model(classifier)
    call = tf.function(lambda crops: encoder(crops, training=False), reduce_retracing=True)
    scores = []
    for images in (pool.images[reals], blended):
        batches = [call(images[start : start + 128].astype(np.float32))[1] for start in range(0, len(images), 128)]
        scores.append(np.concatenate([np.asarray(batch).reshape(-1) for batch in batches]))
    labels = np.r_[np.zeros(len(reals)), np.ones(len(reals))]
    auc = roc_auc(labels, np.concatenate(scores))
    return None if auc is None else round(auc, 4)


# --- the whole run --------------------------------------------------------------------------------------------


@dataclass
class SourceTrainingResult:
    weights_path: Path
    settings: dict
    metrics: dict
    calibration_labels: np.ndarray
    calibration_probabilities: np.ndarray
    seconds: float


def _rows(pool: CropPool, *, splits: tuple[str, ...], sources: tuple[str, ...]) -> np.ndarray:
    return np.flatnonzero(np.isin(pool.split, splits) & np.isin(pool.source, sources))


def balanced_weights(groups: np.ndarray) -> np.ndarray:
    """One weight per row so that every group (data source) has the same total weight."""
    groups = np.asarray(groups)
    weights = np.zeros(len(groups), dtype=np.float64)
    for name in set(groups.tolist()):
        members = groups == name
        weights[members] = 1.0 / members.sum()
    return weights * len(groups) / max(weights.sum(), 1e-12)


def train_image_on_sources(
    *,
    cache_root: Path,
    data_dir: Path,
    out_dir: Path,
    config: SourceTrainingConfig,
    backbone_weights: Path | None,
    leave_out: str | None = None,
    progress: Progress | None = None,
) -> SourceTrainingResult:
    """Stage 1, cross-fitted stage 2 and the decision (see the module docstring); saves the run to `out_dir`.

    Writes `image_model.keras`, `metrics.json` (config, curves, held-out figures per source, settings) and
    `video_frames_oof.npz` (out-of-fold frame outputs, for the video model). With `leave_out`, that image
    source is kept out of training and calibration entirely (its real faces are not self-blended either) and
    its test split is reported as a source never seen.
    """
    import keras

    started = time.monotonic()
    say = progress or (lambda message: None)
    if leave_out is not None and leave_out not in config.sources:
        raise ValueError(f"--leave-out {leave_out!r} is not one of the training sources {list(config.sources)}")
    pool = load_crop_pool(cache_root, config, data_dir=data_dir, progress=say)
    trained_sources = tuple(name for name in config.sources if name != leave_out)
    stage1_rows = _rows(pool, splits=("train",), sources=trained_sources)
    video_rows = np.flatnonzero(np.isin(pool.source, config.video_sources))
    keras.utils.set_random_seed(config.seed)
    classifier = build_classifier(config, backbone_weights=backbone_weights)
    say(f"{config.backbone}: {classifier.count_params():,} parameters, {config.input_size} px crops")
    curves: dict[str, list[dict]] = {}
    resynthesised = None
    if config.resynthesised:
        real_rows = stage1_rows[pool.labels[stage1_rows] == 0]
        real_crops = pool.images[real_rows]  # one copy of the real crops for training and reconstructing
        resynthesiser = train_resynthesiser(real_crops, steps=config.resynthesis_steps, seed=config.seed, progress=say)
        resynthesised = (real_rows, resynthesise(resynthesiser, real_crops))
        del resynthesiser, real_crops
    stage1_streams = mixture_streams(
        pool,
        stage1_rows,
        self_blended=config.self_blended,
        cross_blended=config.cross_blended,
        resynthesised=resynthesised,
    )
    say("stage 1 streams: " + ", ".join(f"{stream.name} ({sum(map(len, stream.units))})" for stream in stage1_streams))
    curves["stage1"] = train_stage(
        classifier,
        pool,
        stage1_streams,
        steps=config.stage1_steps,
        learning_rate=config.stage1_learning_rate,
        config=config,
        seed=config.seed,
        label="stage 1",
        progress=say,
    )
    stage1_weights = classifier.get_weights()
    monitor_rows = _rows(pool, splits=("calibration",), sources=trained_sources)
    stage1_monitor = auc_by_source(
        pool, monitor_rows, predict_rows(classifier, pool, monitor_rows, mirror=config.test_time_flip)["logits"]
    )
    say(f"stage 1, calibration-split ROC-AUC by source: {stage1_monitor}")
    stage1_video, stage1_video_outputs = {}, None
    if len(video_rows):
        stage1_video_outputs = predict_rows(classifier, pool, video_rows, mirror=config.test_time_flip)
        stage1_video = auc_by_source(pool, video_rows, stage1_video_outputs["logits"])
        say(f"stage 1, video frames (never trained on) ROC-AUC: {stage1_video}")

    def stage2(train_video_rows: np.ndarray, label: str, seed: int) -> None:
        classifier.set_weights(stage1_weights)
        curves[label] = train_stage(
            classifier,
            pool,
            stage2_streams(pool, stage1_rows, train_video_rows, config),
            steps=config.stage2_steps,
            learning_rate=config.stage2_learning_rate,
            config=config,
            seed=seed,
            label=label,
            progress=say,
        )

    oof = {"logits": np.full(len(video_rows), np.nan), "embeddings": None, "manipulation": None}
    if stage1_video_outputs is not None and config.stage2_steps == 0:
        # No video stage: the shipped model is stage 1, which has seen no video at all, so its scores of every
        # video frame are held out already, and the hour cross-fitting would take goes to stage 1 instead.
        oof = dict(stage1_video_outputs)
    fold_names = sorted({str(value) for value in pool.split[video_rows]})
    if len(video_rows) and config.cross_fit and config.stage2_steps > 0:
        for number, fold in enumerate(fold_names, start=1):
            held_out = video_rows[pool.split[video_rows] == fold]
            stage2(video_rows[pool.split[video_rows] != fold], f"stage 2, {fold} held out", config.seed + number)
            outputs = predict_rows(classifier, pool, held_out, mirror=config.test_time_flip)
            positions = np.searchsorted(video_rows, held_out)
            oof["logits"][positions] = outputs["logits"]
            for key in ("embeddings", "manipulation"):
                if oof[key] is None:
                    oof[key] = np.zeros((len(video_rows), outputs[key].shape[1]), dtype=np.float32)
                oof[key][positions] = outputs[key]
            say(f"{fold}: out-of-fold frame ROC-AUC {auc_by_source(pool, held_out, outputs['logits'])}")
            keras.backend.clear_session(free_memory=False)
    if len(video_rows) and config.stage2_steps > 0:
        stage2(video_rows, "stage 2, every video", config.seed + 99)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / "image_model.keras"
    classifier.save(weights_path)
    # Saved again without the optimizer: AdamW's two slots per weight would triple the file (28.7 MB instead of
    # 10.3 MB for MobileNetV2), and a shipped model never resumes training.
    load_keras_model(weights_path).save(weights_path)

    return decide_and_report(
        classifier,
        pool,
        config=config,
        trained_sources=trained_sources,
        video_rows=video_rows,
        oof=oof,
        out_dir=out_dir,
        weights_path=weights_path,
        history={"stage1_calibration_auc": stage1_monitor, "stage1_video_frames_auc": stage1_video, "curves": curves},
        leave_out=leave_out,
        say=say,
        started=started,
    )


def decide_and_report(
    classifier,
    pool: CropPool,
    *,
    config: SourceTrainingConfig,
    trained_sources: tuple[str, ...],
    video_rows: np.ndarray,
    oof: dict,
    out_dir: Path,
    weights_path: Path,
    history: dict,
    leave_out: str | None,
    say: Progress,
    started: float,
) -> SourceTrainingResult:
    """Step 3 of the recipe for a trained classifier: calibration, threshold and band, the quick held-out figures,
    and the run's metrics.json (plus `video_frames_oof.npz`). `history` is what training recorded (stage-1
    monitors and curves), kept in the metrics as it was."""
    # The decision, on the calibration splits of the trained image sources, each source weighing the same. The
    # out-of-fold video frames stay out of it: a photo's probability is fitted on photos, and the video model
    # calibrates its own per-person aggregate on held-out videos. Fitted with them, the frames of a source the
    # model ranks backwards (Celeb-DF's real frames score above its fakes) flattened the scale for every photo.
    calibration_rows = _rows(pool, splits=("calibration",), sources=trained_sources)
    if len(set(pool.labels[calibration_rows].tolist())) < 2:
        raise ValueError("the calibration splits hold fewer than two classes: too little data to choose a decision")
    decision_logits = predict_rows(classifier, pool, calibration_rows, mirror=config.test_time_flip)["logits"]
    decision_labels, decision_groups = pool.labels[calibration_rows], pool.source[calibration_rows]
    has_oof = bool(len(video_rows)) and not np.isnan(oof["logits"]).any()
    calibration = fit_isotonic_calibration(decision_logits, decision_labels, weights=balanced_weights(decision_groups))
    probabilities = calibration.probabilities(decision_logits)
    threshold = choose_threshold_capped(
        decision_labels, probabilities, decision_groups, max_false_positive_rate=config.max_false_positive_rate
    )
    low, high = choose_uncertain_band(decision_labels, probabilities, threshold)
    low = cap_real_verdicts(decision_labels, probabilities, decision_groups, low, max_miss_rate=config.max_miss_rate)
    fitted_on = "calibration splits of " + ", ".join(trained_sources)
    settings = {
        "crop_rule": config.crop_rule.to_dict(),
        "input_size": config.input_size,
        "embedding_dim": config.embedding_dim,
        "architecture": {"backbone": config.backbone, **config.backbone_options},
        "manipulation_types": list(MANIPULATION_TYPES),
        "calibration": {**calibration.to_settings(), "weights": "sources equally", "fitted_on": fitted_on},
        "detector": {"detect_max_side": 960, "min_confidence": 0.9, "min_face_size": 20},
        "test_time_flip": config.test_time_flip,
        "threshold": threshold,
        "uncertain_low": low,
        "uncertain_high": high,
        "threshold_rule": f"balanced accuracy per source, false-positive rate <= {config.max_false_positive_rate} "
        "on every real source",
        "band_rule": f"99% accuracy outside the band, and at most {config.max_miss_rate} of every source's fakes "
        "below it",
    }

    # Quick held-out figures on the cached crops (the model card's figures come from evaluate_report, through
    # the scan pipeline; these are for comparing runs).
    calibrated = ImageModel(classifier, settings)
    test_rows = _rows(pool, splits=("test",), sources=config.sources)
    test_outputs = predict_rows(classifier, pool, test_rows, mirror=config.test_time_flip)
    test_probabilities = calibrated.calibrate(test_outputs["logits"])
    held_out = {"test_auc": auc_by_source(pool, test_rows, test_outputs["logits"])}
    held_out["test_false_positive_rate"] = {
        name: round(
            float(
                (
                    test_probabilities[(pool.source[test_rows] == name) & (pool.labels[test_rows] == 0)] >= threshold
                ).mean()
            ),
            4,
        )
        for name in config.sources
    }
    held_out["test_manipulation_accuracy"] = _manipulation_accuracy(pool, test_rows, test_outputs["manipulation"])
    held_out["self_blended_calibration_auc"] = self_blended_rows_auc(
        classifier, pool, calibration_rows, config.seed, even_focus=config.even_blend_focus
    )
    if has_oof:
        held_out["video_frames_oof_auc"] = auc_by_source(pool, video_rows, oof["logits"])
        held_out["video_frames_oof_auc_all"] = round(roc_auc(pool.labels[video_rows], oof["logits"]) or 0.0, 4)
        held_out["video_frames_oof_manipulation_accuracy"] = _manipulation_accuracy(
            pool, video_rows, oof["manipulation"]
        )
    say(f"held out: {json.dumps(held_out)}")
    calibration_report = binary_report(decision_labels, probabilities, threshold)
    metrics = {
        "config": {**config.to_dict(), "leave_out": leave_out},
        "stage1_calibration_auc": history["stage1_calibration_auc"],
        "stage1_video_frames_auc": history["stage1_video_frames_auc"],
        "held_out": held_out,
        "calibration": calibration_report,
        "uncertain_fraction": round(float(((probabilities > low) & (probabilities < high)).mean()), 6),
        "crops": {
            split: {
                name: int(((pool.split == split) & (pool.source == name)).sum())
                for name in sorted(set(pool.source.tolist()))
                if ((pool.split == split) & (pool.source == name)).any()
            }
            for split in sorted(set(pool.split.tolist()))
        },
        "curves": history["curves"],
        "parameters": int(classifier.count_params()),
    }
    if len(video_rows):
        np.savez_compressed(
            out_dir / "video_frames_oof.npz",
            names=np.asarray([pool.names[row] for row in video_rows]),
            units=pool.unit[video_rows].astype(str),
            groups=pool.group[video_rows].astype(str),
            folds=pool.split[video_rows].astype(str),
            labels=pool.labels[video_rows],
            logits=oof["logits"],
            embeddings=oof["embeddings"] if oof["embeddings"] is not None else np.zeros((0, 0)),
            manipulation=oof["manipulation"] if oof["manipulation"] is not None else np.zeros((0, 0)),
            test_time_flip=np.asarray(config.test_time_flip),
        )
    seconds = time.monotonic() - started
    if history.get("training_seconds") is not None:
        # A recalibrated run: training took what it took; this pass only made the decision anew.
        metrics["training_seconds"] = history["training_seconds"]
        metrics["recalibration_seconds"] = round(seconds, 1)
    else:
        metrics["training_seconds"] = round(seconds, 1)
    (out_dir / "metrics.json").write_text(json.dumps({"metrics": metrics, "settings": settings}, indent=2))
    return SourceTrainingResult(
        weights_path=weights_path,
        settings=settings,
        metrics=metrics,
        calibration_labels=decision_labels,
        calibration_probabilities=probabilities,
        seconds=seconds,
    )


def _manipulation_accuracy(pool: CropPool, rows: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Share of fakes whose most likely manipulation type is their source's, per source."""
    figures = {}
    for name in sorted({str(value) for value in pool.source[rows]}):
        fakes = (pool.source[rows] == name) & (pool.labels[rows] == 1)
        if fakes.any():
            predicted = probabilities[fakes].argmax(axis=1)
            figures[name] = round(float((predicted == pool.manipulation[rows][fakes]).mean()), 4)
    return figures


def recalibrate_image_run(
    run_dir: Path,
    *,
    cache_root: Path,
    data_dir: Path,
    test_time_flip: bool | None = None,
    progress: Progress | None = None,
) -> SourceTrainingResult:
    """Step 3 of the recipe again for a finished run, from its saved model and out-of-fold frame scores.

    The weights and the cross-fitted frames stay as trained; calibration, threshold, band, the quick held-out
    figures and metrics.json are made anew with the current decision code. For a run trained before that code
    changed (`train_image_model --recalibrate RUN`), at the cost of a few minutes instead of an hour.

    `test_time_flip` (None: as the run was trained) switches how faces are scored. The frames are then scored
    anew by the run's own model, which is held out only where the run had no video stage; a run with one
    raises ValueError, since its fold models, which scored the frames out of fold, are not kept.
    """
    started = time.monotonic()
    say = progress or (lambda message: None)
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    values = dict(saved["config"])
    leave_out = values.pop("leave_out", None)
    # Runs from before the option scored each face once.
    trained_with_flip = bool(values.pop("test_time_flip", False))
    values["test_time_flip"] = trained_with_flip if test_time_flip is None else test_time_flip
    rescore_frames = values["test_time_flip"] != trained_with_flip
    if rescore_frames and int(values.get("stage2_steps", 0)) > 0:
        raise ValueError(
            f"{run_dir} trained on video frames, so its own model cannot score them held out: "
            "retrain it to change test_time_flip"
        )
    values["augment"] = AugmentConfig(
        **{key: tuple(value) if isinstance(value, list) else value for key, value in values["augment"].items()}
    )
    values["sources"], values["video_sources"] = tuple(values["sources"]), tuple(values["video_sources"])
    config = SourceTrainingConfig(**values)
    pool = load_crop_pool(cache_root, config, data_dir=data_dir, progress=say)
    video_rows = np.flatnonzero(np.isin(pool.source, config.video_sources))
    oof = {"logits": np.full(len(video_rows), np.nan), "embeddings": None, "manipulation": None}
    frames_path = run_dir / "video_frames_oof.npz"
    if len(video_rows) and frames_path.is_file() and not rescore_frames:
        frames = np.load(frames_path, allow_pickle=False)
        if frames["names"].astype(str).tolist() != [pool.names[row] for row in video_rows]:
            raise ValueError(f"{frames_path} does not hold the frames of the current crop cache: retrain the run")
        oof = {key: frames[key] for key in ("logits", "embeddings", "manipulation")}
    weights_path = run_dir / "image_model.keras"
    classifier = load_keras_model(weights_path)
    if rescore_frames and len(video_rows):
        say(f"scoring the video frames anew, test_time_flip={config.test_time_flip} (the run saw no video)")
        oof = predict_rows(classifier, pool, video_rows, mirror=config.test_time_flip)
    say(f"recalibrating {run_dir} (weights as trained, test_time_flip={config.test_time_flip})")
    return decide_and_report(
        classifier,
        pool,
        config=config,
        trained_sources=tuple(name for name in config.sources if name != leave_out),
        video_rows=video_rows,
        oof=oof,
        out_dir=run_dir,
        weights_path=weights_path,
        history={
            key: saved.get(key)
            for key in ("stage1_calibration_auc", "stage1_video_frames_auc", "curves", "training_seconds")
        },
        leave_out=leave_out,
        say=say,
        started=started,
    )
