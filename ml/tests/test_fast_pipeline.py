"""The speed-ups of the scan pipeline give the same answers as the slow way they replace.

Compiled MTCNN against the `mtcnn` package, detection on downscaled photos, re-detection between full
detections against detecting every frame, batched compiled scoring against per-crop `model.predict`, compiled
Grad-CAM against the eager computation, and the decoding thread.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from ml.faces import (
    FaceDetector,
    box_iou,
    crop_square,
    iter_video_frames,
    load_image,
    prefetched,
)
from ml.pipeline import Analyzer, ModelSpec
from training.shipped import default_entries, read_manifest

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
VAL = Path("images") / "stylegan-celeba" / "val"

pytestmark = pytest.mark.real_models


@pytest.fixture(scope="module")
def shipped_analyzer() -> Analyzer:
    specs = {
        kind: ModelSpec(str(WEIGHTS / entry["weights"]), entry["settings"], entry["name"])
        for kind, entry in default_entries(read_manifest()).items()
    }
    return Analyzer(specs["image"], specs["video"])


@pytest.fixture(scope="module")
def val_photos(data_dir: Path) -> list[Path]:
    real = sorted((data_dir / VAL / "real").iterdir())[:6]
    fake = sorted((data_dir / VAL / "fake").iterdir())[:6]
    return real + fake


def _package_faces(image: np.ndarray, min_face_size: int = 20) -> list[dict]:
    from mtcnn import MTCNN

    return [face for face in MTCNN().detect_faces(image, min_face_size=min_face_size) if face["confidence"] >= 0.9]


def test_compiled_mtcnn_finds_the_same_faces_as_the_mtcnn_package(val_photos: list[Path]) -> None:
    from ml.mtcnn_runner import CompiledMTCNN

    compiled = CompiledMTCNN()
    for photo in val_photos:
        image = load_image(photo)
        expected = sorted(_package_faces(image), key=lambda face: face["box"])
        found = sorted(
            (face for face in compiled.detect(image)[0] if face["confidence"] >= 0.9), key=lambda face: face["box"]
        )
        assert len(found) == len(expected), photo.name
        for ours, theirs in zip(found, expected, strict=True):
            assert np.max(np.abs(np.subtract(ours["box"], theirs["box"]))) <= 2, photo.name
            assert ours["confidence"] == pytest.approx(theirs["confidence"], abs=1e-3)
            for name, point in theirs["keypoints"].items():
                assert np.max(np.abs(np.subtract(ours["keypoints"][name], point))) <= 2


def test_compiled_mtcnn_batches_same_sized_images_without_changing_the_answer(val_photos: list[Path]) -> None:
    from ml.mtcnn_runner import CompiledMTCNN

    compiled = CompiledMTCNN()
    fakes = [load_image(photo) for photo in val_photos[6:9]]  # the generated faces are all 256x256
    assert len({image.shape for image in fakes}) == 1
    one_by_one = [compiled.detect(image)[0] for image in fakes]
    batched = compiled.detect(np.stack(fakes))
    for single, in_batch in zip(one_by_one, batched, strict=True):
        assert [face["box"] for face in single] == [face["box"] for face in in_batch]
        assert [face["confidence"] for face in single] == pytest.approx([face["confidence"] for face in in_batch])


def test_a_larger_minimum_face_size_works_where_the_mtcnn_package_fails(val_photos: list[Path]) -> None:
    from ml.mtcnn_runner import pyramid_scales

    image = load_image(val_photos[0])
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 4, axis=0), 4, axis=1))  # 712x872: a 4x upscale
    scales = pyramid_scales(*big.shape[:2], min_face_size=80)
    assert scales and min(big.shape[:2]) * scales[-1] >= 12
    faces = FaceDetector(min_face_size=80).detect(big)
    assert len(faces) == 1 and min(faces[0].box[2:]) >= 80


def test_detection_on_a_downscaled_group_photo_finds_every_face_at_full_resolution(val_photos: list[Path]) -> None:
    import cv2

    tiles = [cv2.resize(load_image(photo), (768, 864), interpolation=cv2.INTER_CUBIC) for photo in val_photos[:6]]
    group = np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:], axis=1)], axis=0)
    assert group.shape[:2] == (1728, 2304)
    detector = FaceDetector(detect_max_side=960)  # the group photo is detected at 960x720
    faces = detector.detect(group)
    assert len(faces) == 6
    tiles_hit = {(face.box[1] // 864, face.box[0] // 768) for face in faces}
    assert len(tiles_hit) == 6, "one face per tile"
    full = FaceDetector(detect_max_side=4000).detect(group)
    for face in faces:
        assert max(box_iou(face.box, other.box) for other in full) >= 0.75


def test_a_face_is_found_again_near_its_last_box_as_a_full_detection_finds_it(val_photos: list[Path]) -> None:
    import cv2

    image = cv2.resize(load_image(val_photos[1]), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    canvas[100 : 100 + image.shape[0], 300 : 300 + image.shape[1]] = image
    detector = FaceDetector()
    before = detector.detect(canvas)
    assert len(before) == 1
    moved = np.full_like(canvas, 90)
    moved[140 : 140 + image.shape[0], 360 : 360 + image.shape[1]] = image  # the face moved 60 px right, 40 down
    expected = detector.detect(moved)
    again = detector.detect_near(moved, before)
    assert len(again) == 1
    assert box_iou(again[0].box, expected[0].box) >= 0.8
    assert again[0].confidence >= 0.9
    empty = np.full_like(canvas, 90)
    assert detector.detect_near(empty, before) == []


def test_batched_compiled_scores_equal_per_crop_model_predict(shipped_analyzer: Analyzer, val_photos: list[Path]):
    rule = shipped_analyzer.image_model.crop_rule
    crops = []
    for photo in val_photos:
        image = load_image(photo)
        faces = shipped_analyzer.detector.detect(image)
        crops.append(crop_square(image, faces[0].box, rule))
    crops = np.stack(crops)
    batched = shipped_analyzer.image_scorer.predict(crops)
    per_crop = [shipped_analyzer.image_model.predict(crop[None]) for crop in crops]
    np.testing.assert_allclose(batched.logits, [p.logits[0] for p in per_crop], atol=1e-4)
    np.testing.assert_allclose(batched.probabilities, [p.probabilities[0] for p in per_crop], atol=1e-4)
    np.testing.assert_allclose(batched.embeddings, np.concatenate([p.embeddings for p in per_crop]), atol=1e-4)
    frames = shipped_analyzer.frame_scorer.predict(crops)
    reference = shipped_analyzer.video_model.predict_frames(crops)
    np.testing.assert_allclose(frames.logits, reference.logits, atol=1e-4)
    np.testing.assert_allclose(frames.probabilities, reference.probabilities, atol=1e-4)


def test_compiled_gradcam_equals_the_eager_computation(shipped_analyzer: Analyzer, val_photos: list[Path]) -> None:
    import keras
    import tensorflow as tf

    from ml import gradcam
    from ml.gradcam import find_last_spatial_layer, gradcam_heatmaps

    rule = shipped_analyzer.image_model.crop_rule
    image = load_image(val_photos[7])
    crop = crop_square(image, shipped_analyzer.detector.detect(image)[0].box, rule)[None]
    model = shipped_analyzer.image_model.classifier
    layer = find_last_spatial_layer(model)
    explainer = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
    batch = tf.convert_to_tensor(crop.astype(np.float32))
    with tf.GradientTape() as tape:
        feature_maps, logits = explainer(batch, training=False)
        explained = tf.reduce_sum(logits[:, 0])
    gradients = tape.gradient(explained, feature_maps)
    raw = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(gradients, axis=(1, 2), keepdims=True) * feature_maps, -1))
    expected = gradcam._resized(gradcam._normalised(raw.numpy()[0]), *crop.shape[1:3])
    assert expected.max() > 0, "the fake photo's crop should have some evidence to explain"
    np.testing.assert_allclose(gradcam_heatmaps(model, crop)[0], expected, atol=1e-4)


def test_a_compiled_explainer_is_released_with_its_model() -> None:
    from ml import gradcam
    from ml.image_model import build_image_model

    model = build_image_model(input_size=32, widths=(8, 16))
    gradcam.gradcam_heatmaps(model, np.zeros((1, 32, 32, 3), np.uint8))
    assert model in gradcam._explainers
    model_ref = weakref.ref(model)
    del model
    gc.collect()
    # The cache holds no strong reference: a worker that swaps models does not keep the old ones alive.
    assert model_ref() is None


def test_tracking_between_detections_gives_one_track_per_person_like_detecting_every_frame(
    shipped_analyzer: Analyzer, data_dir: Path
) -> None:
    clip = data_dir / "videos" / "ffpp" / "real" / "ffpp_634.mp4"
    fast = shipped_analyzer.analyze_video(clip)
    every_frame = Analyzer(
        shipped_analyzer.image_spec, shipped_analyzer.video_spec, full_detection_every=1
    ).analyze_video(clip)
    assert len(fast.faces) == len(every_frame.faces) == 1
    assert fast.media.full_detections < fast.media.frames_analyzed // 4
    assert every_frame.media.full_detections == every_frame.media.frames_analyzed
    ious = []
    for ours, theirs in zip(fast.frames, every_frame.frames, strict=True):
        # Re-detection in a small region can find a face that MTCNN misses in the whole frame, never the
        # other way round: a face it does not re-find triggers a full detection of that frame.
        assert len(ours.faces) >= len(theirs.faces)
        if theirs.faces:
            ious.append(box_iou(ours.faces[0].box, theirs.faces[0].box))
    assert len(ious) >= len(fast.frames) - 2
    assert min(ious) >= 0.6 and float(np.mean(ious)) >= 0.85
    assert fast.fake_probability == pytest.approx(every_frame.fake_probability, abs=0.05)
    assert fast.verdict == every_frame.verdict


def test_frames_come_back_in_order_from_the_decoding_thread(data_dir: Path) -> None:
    clip = data_dir / "videos" / "ffpp" / "real" / "ffpp_004.mp4"
    wanted = list(range(0, 300, 25))
    direct = list(iter_video_frames(clip, wanted))
    threaded = list(prefetched(iter_video_frames(clip, wanted), ahead=2))
    assert [number for number, _ in threaded] == [number for number, _ in direct] == wanted
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(direct, threaded, strict=True))
    for number, _frame in prefetched(iter_video_frames(clip, wanted), ahead=1):
        if number >= 50:
            break  # leaving early stops the thread (the generator's finally joins it)


def test_a_decoding_error_reaches_the_caller() -> None:
    def broken():
        yield 0, np.zeros((2, 2, 3), np.uint8)
        raise RuntimeError("decoder broke")

    frames = prefetched(broken())
    assert next(frames)[0] == 0
    with pytest.raises(RuntimeError, match="decoder broke"):
        next(frames)
