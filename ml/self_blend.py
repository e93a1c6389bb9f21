"""Self-blended images: pseudo-fakes made from real faces alone, to learn what face swaps leave behind.

A face swap pastes a generated face region onto real footage; what betrays it is the seam: a boundary where
colour, sharpness and geometry change slightly, around the inner face. Shiohara and Yamasaki (CVPR 2022,
"Detecting Deepfakes with Self-Blended Images") showed that a detector trained to tell real faces from the
same faces blended with a slightly altered copy of themselves learns exactly those cues, and generalises to
swap methods it never saw. The shared data has many real faces and almost no swapped ones, so this is how
the video model's frame encoder learns swaps (`train_image_model --self-blended`).

One self-blended image: the crop is the target; a source copy gets a small colour, sharpness and geometry
change; a soft mask over the inner face (an ellipse through MTCNN's eye and mouth landmarks, randomly sized,
shifted and feathered) decides where the source replaces the target, at a random opacity. The paper builds
its mask from 81 landmarks; MTCNN gives 5, so the hull is approximated by that ellipse.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ml.faces import CropRule, square_region
from ml.sharpness import refocus, sharpness_of, unsharp_mask

LANDMARK_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def crop_landmarks(
    landmarks: dict[str, list[float]],
    *,
    box: list[float],
    image_width: int,
    image_height: int,
    margin: float,
    size: int,
) -> np.ndarray | None:
    """The five MTCNN landmarks of an image, mapped into its face crop (5 x 2, crop pixels), or None.

    The crop is `ml.faces.crop_square`'s: the same square, then the same scale to `size`.
    """
    if any(name not in landmarks for name in LANDMARK_ORDER):
        return None
    left, top, side = square_region(image_height, image_width, box, CropRule(margin=margin, size=size))
    points = np.asarray([landmarks[name] for name in LANDMARK_ORDER], dtype=np.float32)
    return (points - np.asarray([left, top], dtype=np.float32)) * (size / side)


def inner_face_mask(landmarks: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft mask (size x size, float32 in [0, 1]) over the inner face: eyes, nose and mouth, feathered."""
    left_eye, right_eye, _nose, mouth_left, mouth_right = landmarks
    eyes = (left_eye + right_eye) / 2.0
    mouth = (mouth_left + mouth_right) / 2.0
    eye_distance = max(float(np.linalg.norm(right_eye - left_eye)), 2.0)
    eyes_to_mouth = max(float(np.linalg.norm(mouth - eyes)), 2.0)
    centre = (eyes + mouth) / 2.0 + rng.uniform(-0.08, 0.08, size=2) * eye_distance
    axes = (
        max(1, int(round(eye_distance * rng.uniform(0.75, 1.05)))),
        max(1, int(round(eyes_to_mouth * rng.uniform(1.0, 1.4)))),
    )
    angle = math.degrees(math.atan2(float(right_eye[1] - left_eye[1]), float(right_eye[0] - left_eye[0])))
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))), axes, angle, 0, 360, 255, thickness=-1)
    # An uneven edge, as a swap's blending boundary follows the face and not a perfect ellipse.
    kernel = int(rng.integers(1, max(2, size // 20)))
    if rng.random() < 0.5:
        mask = cv2.erode(mask, np.ones((kernel, kernel), np.uint8))
    else:
        mask = cv2.dilate(mask, np.ones((kernel, kernel), np.uint8))
    feather = rng.uniform(0.02, 0.06) * size
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=feather)
    peak = float(soft.max())
    return soft / peak if peak > 0 else soft


def _altered_copy(crop: np.ndarray, rng: np.random.Generator, *, even_focus: bool = False) -> np.ndarray:
    """The source: the same face with a slight colour, sharpness and geometry change (with `even_focus`, no
    sharpness change: `self_blend` sets the blend's focus afterwards)."""
    size = crop.shape[0]
    source = crop.astype(np.float32)
    if rng.random() < 0.8:
        source = source * rng.uniform(0.9, 1.1, size=3) + rng.uniform(-12.0, 12.0, size=3)
        mean = source.mean()
        source = (source - mean) * rng.uniform(0.9, 1.1) + mean
    # Drawn either way, so that the rest of the draw is the same with and without even focus.
    roll = rng.random()
    if not even_focus:
        if roll < 0.35:
            source = cv2.GaussianBlur(source, (0, 0), sigmaX=rng.uniform(0.4, 1.0))
        elif roll < 0.6:
            source = unsharp_mask(source, 0.6)
    if rng.random() < 0.8:
        scale = rng.uniform(0.94, 1.06)
        shift = rng.uniform(-0.03, 0.03, size=2) * size
        matrix = np.float32(
            [[scale, 0, (1 - scale) * size / 2 + shift[0]], [0, scale, (1 - scale) * size / 2 + shift[1]]]
        )
        source = cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(source, 0, 255)


def self_blend(
    crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, *, even_focus: bool = False
) -> np.ndarray:
    """One self-blended pseudo-fake of a real RGB uint8 face crop, given its landmarks in crop pixels.

    With `even_focus` the blended region is then blurred or sharpened so that the blend's sharpness is the crop's
    own times a factor drawn evenly in log between 1/2 and 2: the inner face is as often sharper than the face it
    came from as blurrier. Without it (the recipe before 2026-12-03), the source's blur, and above all blending
    two copies a subpixel shift apart, leave four blends in five blurrier than their real face (median 0.58-0.75
    of its sharpness per source: `manage.py sharpness_check --self-blends 200`), and the model learns "a blurry
    inner face is fake", which ranks sharp swaps (the Celeb-DF clips') below their real frames.
    """
    size = crop.shape[0]
    mask = inner_face_mask(landmarks, size, rng) * float(rng.choice(BLEND_RATIOS))
    source = _altered_copy(crop, rng, even_focus=even_focus)
    return _blend(crop, source, mask, rng, even_focus=even_focus)


def _blend(
    crop: np.ndarray, source: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, even_focus: bool
) -> np.ndarray:
    """`source` (float32) over `crop` through `mask`, refocused with `even_focus` (`self_blend`), as uint8."""
    blended = source * mask[..., None] + crop.astype(np.float32) * (1.0 - mask[..., None])
    if even_focus:
        target = sharpness_of(crop) * float(np.exp(rng.uniform(-math.log(2), math.log(2))))
        blended = refocus(blended, target, mask=mask)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


# --- blends of two people ---------------------------------------------------------------------------------------
# A self-blend teaches the seam with nothing else changed: same person, same light, same camera. A real swap also
# pastes in another person's face, lit, coloured and focused by another camera, and fitted to a pose that is not
# quite its own. Li et al. (CVPR 2020, "Face X-ray") made such pseudo-fakes from pairs of real faces: the donor
# nearest in pose (landmarks) is aligned onto the target, its colours matched to the target's, and blended through
# the target's face mask. `cross_blend` is that, with the self-blend's mask and focus rule.


def landmark_shape(landmarks: np.ndarray) -> np.ndarray:
    """The five landmarks (5 x 2) as a pose descriptor: centred and scaled to unit size (10 values)."""
    points = np.asarray(landmarks, dtype=np.float64)
    centred = points - points.mean(axis=0)
    scale = float(np.linalg.norm(centred))
    return (centred / max(scale, 1e-6)).reshape(-1)


def nearest_in_pose(target_shape: np.ndarray, candidate_shapes: np.ndarray) -> int:
    """The index of the candidate whose pose descriptor is nearest the target's."""
    return int(np.argmin(np.sum((np.asarray(candidate_shapes) - target_shape) ** 2, axis=1)))


def _match_colours(donor: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The donor's colours moved to the target's inside the mask: per-channel mean and spread in Lab (Reinhard et
    al. 2001), the colour transfer face-swap tools apply before blending."""
    inside = mask > 0.5
    if inside.sum() < 16:
        return donor
    donor_lab = cv2.cvtColor(np.clip(donor, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    target_lab = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    donor_mean, donor_std = donor_lab[inside].mean(axis=0), donor_lab[inside].std(axis=0) + 1e-3
    target_mean, target_std = target_lab[inside].mean(axis=0), target_lab[inside].std(axis=0) + 1e-3
    moved = np.clip((donor_lab - donor_mean) * (target_std / donor_std) + target_mean, 0, 255).astype(np.uint8)
    return cv2.cvtColor(moved, cv2.COLOR_LAB2RGB).astype(np.float32)


def cross_blend(
    crop: np.ndarray,
    landmarks: np.ndarray,
    donor: np.ndarray,
    donor_landmarks: np.ndarray,
    rng: np.random.Generator,
    *,
    even_focus: bool = False,
) -> np.ndarray:
    """A pseudo-swap: the inner face of `donor` (another real person's RGB uint8 crop) on the real `crop`.

    The donor is aligned onto the crop by the similarity transform between their landmarks, its colours matched
    to the crop's four times in five (a swap tool's colour transfer is not always good), and blended through
    the crop's inner-face mask at a random opacity. `even_focus` as in `self_blend`.
    """
    size = crop.shape[0]
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(donor_landmarks, dtype=np.float32), np.asarray(landmarks, dtype=np.float32)
    )
    if matrix is None:  # degenerate landmarks: no alignment to make, so no swap either
        return self_blend(crop, landmarks, rng, even_focus=even_focus)
    aligned = cv2.warpAffine(
        donor.astype(np.float32), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    mask = inner_face_mask(landmarks, size, rng)
    if rng.random() < 0.8:
        aligned = _match_colours(aligned, crop, mask)
    return _blend(crop, aligned, mask * float(rng.choice(BLEND_RATIOS)), rng, even_focus=even_focus)
