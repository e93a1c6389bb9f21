"""The face pipeline on real photos and frames: detection, the crop rule, downscaled detection, tracking."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ml.errors import MediaError
from ml.faces import (
    CropRule,
    Face,
    box_iou,
    crop_square,
    evenly_spaced_indices,
    iter_video_frames,
    load_image,
    probe_video,
    track_faces,
)


def test_it_finds_one_sane_face_in_a_real_photo(detector, real_photo: Path) -> None:
    image = load_image(real_photo)
    faces = detector.detect(image)
    assert len(faces) == 1
    x, y, width, height = faces[0].box
    assert x >= 0 and y >= 0 and x + width <= image.shape[1] and y + height <= image.shape[0]
    assert 0.25 * image.shape[1] < width < image.shape[1]
    assert faces[0].confidence >= 0.9
    assert set(faces[0].landmarks) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    eye_x, eye_y = faces[0].landmarks["left_eye"]
    assert x <= eye_x <= x + width and y <= eye_y <= y + height


def test_it_finds_the_face_in_a_generated_photo(detector, fake_photo: Path) -> None:
    assert len(detector.detect(load_image(fake_photo))) == 1


def test_it_finds_no_face_in_a_face_free_picture(detector, face_free_photo: Path) -> None:
    assert detector.detect(load_image(face_free_photo)) == []


def test_large_images_are_detected_downscaled_and_boxes_map_back(detector, real_photo: Path) -> None:
    image = load_image(real_photo)
    small_face = detector.detect(image)[0]
    factor = 6
    large = cv2.resize(image, (image.shape[1] * factor, image.shape[0] * factor), interpolation=cv2.INTER_CUBIC)
    assert max(large.shape[:2]) > detector.detect_max_side
    large_face = detector.detect(large)[0]
    scaled_back = [value / factor for value in large_face.box]
    assert box_iou(scaled_back, small_face.box) > 0.7
    assert large_face.landmarks["nose"][0] > image.shape[1]  # in full-resolution pixels


def test_the_crop_rule_gives_a_fixed_size_square_and_never_pads() -> None:
    rule = CropRule(margin=0.15, size=64)
    image = np.full((100, 80, 3), 200, dtype=np.uint8)
    near_the_corner = crop_square(image, (0, 0, 60, 70), rule)
    assert near_the_corner.shape == (64, 64, 3)
    assert (near_the_corner == 200).all()  # shifted inside the image, no black border
    assert CropRule.from_dict(rule.to_dict()) == rule


def test_it_reports_unreadable_and_oversized_images(tmp_path: Path, real_photo: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(MediaError):
        load_image(text)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(real_photo.read_bytes()[:300])
    with pytest.raises(MediaError):
        load_image(truncated)
    with pytest.raises(MediaError, match="limit"):
        load_image(real_photo, max_pixels=1000)


def test_evenly_spaced_indices_cover_the_video_once() -> None:
    assert evenly_spaced_indices(100, 4) == [12, 37, 62, 87]
    assert evenly_spaced_indices(5, 32) == [0, 1, 2, 3, 4]
    assert evenly_spaced_indices(0, 8) == []


def test_it_reads_the_wanted_frames_of_a_real_video(data_dir: Path) -> None:
    video = sorted((data_dir / "videos" / "celebdf" / "real").iterdir())[0]
    info = probe_video(video)
    assert info.frame_count == 24 and info.width == 298
    frames = list(iter_video_frames(video, [0, 5, 23]))
    assert [number for number, _ in frames] == [0, 5, 23]
    assert frames[0][1].shape == (298, 298, 3)


def _face(x: int, y: int, size: int = 50) -> Face:
    return Face(box=(x, y, size, size), confidence=0.99)


def test_tracking_gives_one_track_per_person_across_frames() -> None:
    frames = [[_face(10 + step * 3, 20), _face(200 - step * 2, 30)] for step in range(6)]
    frames[2] = [frames[2][1]]  # the first person is missed once
    frames[4].append(_face(400, 400, 20))  # one spurious detection
    tracks = track_faces(frames)
    assert len(tracks) == 2
    assert sorted(len(track.faces) for track in tracks) == [5, 6]
    for track in tracks:
        xs = [face.box[0] for face in track.faces]
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)


def test_it_tracks_the_person_in_a_real_clip(detector, data_dir: Path) -> None:
    video = sorted((data_dir / "videos" / "celebdf" / "fake").iterdir())[0]
    faces_per_frame = [detector.detect(frame) for _, frame in iter_video_frames(video, range(0, 24, 4))]
    tracks = track_faces(faces_per_frame)
    assert len(tracks) == 1
    assert len(tracks[0].faces) >= 5
