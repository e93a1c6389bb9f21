"""Re-synthesised faces: real face crops passed through a small autoencoder whose decoder upsamples with
transposed convolutions, as GAN generators and latent-diffusion decoders do.

Self-blended faces (`ml.self_blend`) turn a real face into a pseudo face swap, so the detector learns the blending
seam from the very faces it sees as real. A re-synthesised face does the same for generated faces: its content is
the real face's, and what differs is the trace an upsampling decoder leaves (periodic, grid-aligned high
frequencies: Zhang, Karaman and Chang, "Detecting and simulating artifacts in GAN fake images", 2019, whose
AutoGAN trains a classifier on real images against their autoencoder reconstructions). Trained against their
own reals, the GAN and diffusion streams teach "looks like StyleGAN's or SDFD's data set" as much as "generated"
(leave-one-source-out, image card); this stream carries no data set's look of its own.

A small autoencoder reconstructs blurrier than its input, and the recipe's *Sharpness* measurements show that a
pseudo-fake blurrier than its real face teaches "blurry means fake". So each re-synthesised face is brought to
its real face's sharpness times a factor drawn evenly in log between 1/2 and 2 (`ml.sharpness.refocus`, as the
even-focus self-blends do), and focus cannot tell the two apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ml.sharpness import refocus, sharpness_of


def build_resynthesiser(*, input_size: int, width: int = 32, seed: int = 0):
    """An untrained autoencoder: uint8-range RGB crops in, crops of the same size and range out.

    One stride-2 convolution down to half the side (twice as many channels as the 2x2 block of pixels it
    replaces holds values, so a few hundred steps reconstruct the face closely), one stride-2 transposed
    convolution (kernel 4) back up, and no skip connection at full resolution: every output pixel comes through
    the upsampling decoder, the last stage of a GAN generator or a latent-diffusion decoder.
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="face")
    features = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    features = layers.Conv2D(width, 3, padding="same", activation="relu", name="encode_0")(features)
    features = layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu", name="encode_1")(features)
    features = layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="bottleneck")(features)
    features = layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu", name="decode_0")(features)
    features = layers.Conv2D(3, 3, padding="same", activation="tanh", name="to_rgb")(features)
    outputs = layers.Rescaling(127.5, offset=127.5, name="unscale")(features)
    return keras.Model(inputs, outputs, name="resynthesiser")


def train_resynthesiser(
    crops: np.ndarray,
    *,
    steps: int = 400,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    width: int = 32,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
):
    """The autoencoder fitted to reconstruct `crops` (N x S x S x 3 uint8 real faces, mirrored at random), L1 loss.

    A few hundred steps are enough: the point is the decoder's upsampling trace, not a faithful reconstruction.
    """
    import keras

    say = progress or (lambda message: None)
    crops = np.asarray(crops)
    if crops.ndim != 4 or len(crops) == 0:
        raise ValueError("the re-synthesiser needs real face crops to learn from")
    model = build_resynthesiser(input_size=int(crops.shape[1]), width=width, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_absolute_error")
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    done = 0
    while done < steps:
        chunk = min(100, steps - done)
        batches = np.stack(
            [_random_flips(crops[rng.integers(len(crops), size=batch_size)], rng) for _ in range(chunk)]
        ).astype(np.float32)
        history = model.fit(
            batches.reshape(-1, *crops.shape[1:]),
            batches.reshape(-1, *crops.shape[1:]),
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        done += chunk
        say(
            f"re-synthesiser: step {done}/{steps}, L1 {history.history['loss'][-1]:.2f} "
            f"({time.monotonic() - started:.0f} s)"
        )
    return model


def resynthesise(model, crops: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """The autoencoder's reconstructions of `crops`, as uint8 (before any refocusing)."""
    crops = np.asarray(crops)
    outputs = [
        np.asarray(model(crops[start : start + batch_size].astype(np.float32), training=False))
        for start in range(0, len(crops), batch_size)
    ]
    if not outputs:
        return np.zeros_like(crops, dtype=np.uint8)
    return np.clip(np.rint(np.concatenate(outputs)), 0, 255).astype(np.uint8)


def refocused_like(resynthesised: np.ndarray, real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A re-synthesised face brought to its real face's sharpness times a factor drawn evenly in log between 1/2
    and 2, so that it is as often sharper than the real face as blurrier (uint8)."""
    target = sharpness_of(real) * float(np.exp(rng.uniform(-math.log(2), math.log(2))))
    return np.clip(np.rint(refocus(resynthesised, target)), 0, 255).astype(np.uint8)


def _random_flips(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flips = rng.random(len(batch)) < 0.5
    batch = batch.copy()
    batch[flips] = batch[flips, :, ::-1]
    return batch
