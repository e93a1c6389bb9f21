"""Benchmark media, generated from the shared data set under `var/bench/` (git-ignored; never commit media).

    .venv/bin/python -m bench.media [--data ../shared/data] [--out var/bench] [--force]

How each file is made (deterministic: the same inputs give the same files):

- `photo-1mp.jpg` (1152x864, one face): the first real CelebA photo of the val split, upscaled (bicubic) to the
  frame's height and centred on a blurred, enlarged copy of itself, so the padding looks like a background
  rather than a black border. JPEG quality 92.
- `group-4mp.jpg` (2304x1728, six faces): the first three real and first three fake val photos, each resized
  to cover a 768x864 tile (centre crop), tiled 3x2. JPEG quality 92.
- `clip-1080p-10s.mp4` (1920x1080, 30 fps, 300 frames = 10 s): the first 300 frames of the FF++ Face2Face video
  `fake/ffpp_face2face_750_743.mp4` (already 1080p), re-encoded with OpenCV's `mp4v` codec (the only MP4 encoder
  the OpenCV wheel has here).
- `clip-720p-30s.mp4` (1280x720, 25 fps, 750 frames = 30 s): the real FF++ video `real/ffpp_004.mp4` (12.4 s,
  720p), played forwards, backwards, forwards... until 750 frames, so that motion stays continuous (a hard cut
  back to the first frame would make a face jump). `mp4v`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path("../shared/data")
DEFAULT_OUT = BASE_DIR / "var" / "bench"
VAL = Path("images") / "stylegan-celeba" / "val"
FFPP = Path("videos") / "ffpp"

PHOTO_1MP = "photo-1mp.jpg"
GROUP_4MP = "group-4mp.jpg"
CLIP_1080P = "clip-1080p-10s.mp4"
CLIP_720P = "clip-720p-30s.mp4"


@dataclass(frozen=True)
class BenchMedia:
    """Paths of the four benchmark files."""

    photo_1mp: Path
    group_4mp: Path
    clip_1080p: Path
    clip_720p: Path

    def images(self) -> dict[str, Path]:
        return {"1 MP photo, 1 face": self.photo_1mp, "4 MP group, 6 faces": self.group_4mp}

    def videos(self) -> dict[str, Path]:
        return {"10 s 1080p": self.clip_1080p, "30 s 720p": self.clip_720p}


def data_dir(value: str | Path | None = None) -> Path:
    """The shared data folder: the argument, else $UNMASK_DATA_DIR, else ../shared/data (from the repo root)."""
    import os

    chosen = Path(value or os.environ.get("UNMASK_DATA_DIR") or DEFAULT_DATA)
    return chosen if chosen.is_absolute() else (BASE_DIR / chosen).resolve()


def _read_rgb(path: Path) -> np.ndarray:
    import numpy as np
    from PIL import Image

    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"))


def _save_jpeg(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, format="JPEG", quality=92)


def _cover(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to cover width x height, then centre-crop to exactly that size."""
    import cv2

    scale = max(width / pixels.shape[1], height / pixels.shape[0])
    resized = cv2.resize(
        pixels,
        (max(width, round(pixels.shape[1] * scale)), max(height, round(pixels.shape[0] * scale))),
        interpolation=cv2.INTER_CUBIC,
    )
    top = (resized.shape[0] - height) // 2
    left = (resized.shape[1] - width) // 2
    return resized[top : top + height, left : left + width]


def make_photo_1mp(source: Path, out: Path, *, width: int = 1152, height: int = 864) -> None:
    import cv2

    photo = _read_rgb(source)
    background = cv2.GaussianBlur(_cover(photo, width, height), (0, 0), sigmaX=25)
    scale = height / photo.shape[0]
    foreground = cv2.resize(photo, (round(photo.shape[1] * scale), height), interpolation=cv2.INTER_CUBIC)
    left = (width - foreground.shape[1]) // 2
    background[:, left : left + foreground.shape[1]] = foreground
    _save_jpeg(background, out)


def make_group_4mp(sources: list[Path], out: Path, *, columns: int = 3, rows: int = 2) -> None:
    import numpy as np

    tile_width, tile_height = 2304 // columns, 1728 // rows
    tiles = [_cover(_read_rgb(source), tile_width, tile_height) for source in sources[: columns * rows]]
    grid = np.concatenate(
        [np.concatenate(tiles[row * columns : (row + 1) * columns], axis=1) for row in range(rows)], axis=0
    )
    _save_jpeg(grid, out)


def make_clip(source: Path, out: Path, *, width: int, height: int, frames: int, fps: float) -> None:
    """Re-encode `source` to `frames` frames at width x height, ping-ponging through it if it is shorter."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    decoded = []
    while len(decoded) < frames:
        ok, frame = capture.read()
        if not ok:
            break
        if frame.shape[1] != width or frame.shape[0] != height:
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        decoded.append(frame)
    capture.release()
    if not decoded:
        raise RuntimeError(f"could not decode {source}")
    order = list(range(len(decoded)))
    sequence: list[int] = []
    forwards = True
    while len(sequence) < frames:
        sequence.extend(order if forwards else order[::-1][1:-1] or order)
        forwards = not forwards
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here")
    try:
        for position in sequence[:frames]:
            writer.write(decoded[position])
    finally:
        writer.release()


def ensure_media(*, data: Path | None = None, out: Path = DEFAULT_OUT, force: bool = False) -> BenchMedia:
    """Create the benchmark files that are missing (all of them with `force`) and return their paths."""
    data = data_dir(data)
    out.mkdir(parents=True, exist_ok=True)
    media = BenchMedia(out / PHOTO_1MP, out / GROUP_4MP, out / CLIP_1080P, out / CLIP_720P)
    if not (data / VAL).is_dir() or not (data / FFPP).is_dir():
        raise SystemExit(f"The shared data is not at {data} (set UNMASK_DATA_DIR or pass --data).")
    real = sorted((data / VAL / "real").iterdir())
    fake = sorted((data / VAL / "fake").iterdir())
    if force or not media.photo_1mp.exists():
        make_photo_1mp(real[0], media.photo_1mp)
    if force or not media.group_4mp.exists():
        make_group_4mp([real[0], fake[0], real[1], fake[1], real[2], fake[2]], media.group_4mp)
    if force or not media.clip_1080p.exists():
        make_clip(
            data / FFPP / "fake" / "ffpp_face2face_750_743.mp4",
            media.clip_1080p,
            width=1920,
            height=1080,
            frames=300,
            fps=30.0,
        )
    if force or not media.clip_720p.exists():
        make_clip(data / FFPP / "real" / "ffpp_004.mp4", media.clip_720p, width=1280, height=720, frames=750, fps=25.0)
    return media


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default $UNMASK_DATA_DIR)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the files go (default var/bench)")
    parser.add_argument("--force", action="store_true", help="rebuild the files even if they exist")
    options = parser.parse_args(argv)
    media = ensure_media(data=options.data, out=options.out, force=options.force)
    for path in (media.photo_1mp, media.group_4mp, media.clip_1080p, media.clip_720p):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
