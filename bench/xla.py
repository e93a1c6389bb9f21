"""Does XLA make face detection faster? MTCNN's compiled graphs with and without `jit_compile`, side by side.

    .venv/bin/python -m bench.xla [--frames 24]

Face detection is nearly all of a scan's time (see `python -m bench`), so it is where XLA would have to help.
Both variants are `ml.mtcnn_runner.CompiledMTCNN`, differing only in its `jit_compile` argument; each is warmed
up, then times detection on
- consecutive frames of the 10 s 1080p benchmark clip, downscaled to 960 px as a scan does (one frame size:
  the best case for XLA, which compiles once per input shape), and
- the benchmark photos plus val photos at twelve different sizes (uploads come in every size).
It prints the first frame, the median of the rest, and the photos' median and worst time per variant. Needs no
database; it uses the media `python -m bench` generates under var/bench/ (made here if missing).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from bench.common import median, print_header, table


def _detector(*, jit_compile: bool) -> Any:
    from ml.mtcnn_runner import CompiledMTCNN

    detector = CompiledMTCNN(jit_compile=jit_compile)
    detector.warm_up()
    return detector


def _timed(detector: Any, image: np.ndarray) -> tuple[float, int]:
    started = time.perf_counter()
    faces = detector.detect(image)[0]
    return time.perf_counter() - started, len(faces)


def _video_frames(path: Any, count: int) -> list[np.ndarray]:
    import cv2

    from ml.faces import iter_video_frames

    frames = []
    for _number, frame in iter_video_frames(path, list(range(count))):
        scale = 960 / max(frame.shape[:2])
        frames.append(cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale))))
    return frames


def _photos_of_many_sizes(media: Any) -> list[np.ndarray]:
    import cv2

    from bench.media import data_dir
    from ml.faces import load_image

    val = data_dir() / "images" / "stylegan-celeba" / "val"
    paths = [media.photo_1mp, *sorted((val / "real").glob("*.jpg"))[:6], *sorted((val / "fake").glob("*.jpg"))[:5]]
    photos = []
    for position, path in enumerate(paths):
        image = load_image(path)
        photos.append(cv2.resize(image, (image.shape[1] + 7 * position, image.shape[0] + 5 * position)))
    return photos


def run(*, frames: int = 24) -> dict:
    from bench import media as bench_media

    print_header("XLA: face detection with and without jit_compile")
    media = bench_media.ensure_media()
    video_frames = _video_frames(media.clip_1080p, frames)
    photos = _photos_of_many_sizes(media)
    rows, figures = [], {}
    for label, jit_compile in (("tf.function (shipped)", False), ("tf.function + XLA", True)):
        detector = _detector(jit_compile=jit_compile)
        frame_times = [_timed(detector, frame)[0] for frame in video_frames]
        photo_times = [_timed(detector, photo)[0] for photo in photos]
        figures[label] = {
            "first_frame_s": frame_times[0],
            "frame_median_s": median(frame_times[1:]),
            "photo_median_s": median(photo_times),
            "photo_max_s": max(photo_times),
        }
        rows.append(
            [
                label,
                f"{frame_times[0]:.3f}",
                f"{median(frame_times[1:]):.4f}",
                f"{median(photo_times):.4f}",
                f"{max(photo_times):.3f}",
            ]
        )
    print(
        table(
            [
                "detection",
                "first 960 px frame (s)",
                f"median of the next {frames - 1} (s)",
                f"median of {len(photos)} photo sizes (s)",
                "worst photo (s)",
            ],
            rows,
        )
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.xla", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24, help="consecutive video frames timed")
    options = parser.parse_args(argv)
    run(frames=max(2, options.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
