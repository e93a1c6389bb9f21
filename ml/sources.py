"""The training and evaluation data, described once: where each source lies, what its fakes are, how it splits.

Every split is by *group*, never by file alone (DeepfakeBench's dataset JSONs; FaceForensics++'s splits by
source video): the DFDC crops of one source video, the videos that share a person, stay on one side, so a
model can never score a held-out face it has seen in another frame or as the real of a fake. Assignment is
a hash of the group key, so it is the same on every machine, for every command, without a split file.

Image sources split three ways: `train`, `calibration` (held out from training; the version's Platt
calibration, threshold and uncertain band are chosen on it, all sources together) and `test` (the figures
the model card quotes). Video sources have too few groups for fixed splits: they are dealt into
`VIDEO_FOLDS` folds of whole groups instead, and every video figure is out-of-fold.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SPLITS = ("train", "calibration", "test")
VIDEO_FOLDS = 4


@dataclass(frozen=True)
class Source:
    """One labelled data set under the shared data folder.

    `parts` are the sub-folders that each hold `real/` and `fake/` (`""`: the source folder itself).
    `fake_type` is what its fakes are, in the manipulation head's terms; `real_origin` names its real
    faces, for the false-positive rate per real source. `test_fraction` / `calibration_fraction` are the
    shares of groups hashed into those splits; a part named in `fixed_test_parts` is the test split whole
    (a source's own published validation set).
    """

    name: str
    path: str
    media: str  # "images" or "videos"
    fake_type: str
    real_origin: str
    parts: tuple[str, ...] = ("",)
    test_fraction: float = 0.0
    calibration_fraction: float = 0.0
    fixed_test_parts: tuple[str, ...] = ()
    description: str = ""

    def folder(self, data_dir: str | Path, part: str = "") -> Path:
        return Path(data_dir) / self.path / part if part else Path(data_dir) / self.path

    def group_of(self, data_dir: str | Path, part: str, relative: str) -> str:
        """The group key of one file (`relative` to its part folder, e.g. `fake/abc.jpg`)."""
        if self.name == "dfdc-faces":
            return _dfdc_source_videos(str(self.folder(data_dir))).get(relative, relative)
        if self.media == "videos":
            raise ValueError("video sources are grouped over all videos at once: use video_groups")
        # No identities are published for these sets: every image is its own group.
        return f"{part}/{relative}" if part else relative

    def split_of(self, data_dir: str | Path, part: str, relative: str) -> str:
        """`train`, `calibration` or `test` for one image file (video sources are split into folds instead)."""
        if part in self.fixed_test_parts:
            return "test"
        share = group_hash(f"{self.name}:{self.group_of(data_dir, part, relative)}")
        if share < self.test_fraction:
            return "test"
        if share < self.test_fraction + self.calibration_fraction:
            return "calibration"
        return "train"


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            name="stylegan-celeba",
            path="images/stylegan-celeba",
            media="images",
            fake_type="gan",
            real_origin="CelebA photos",
            parts=("train", "val"),
            calibration_fraction=0.1,
            fixed_test_parts=("val",),
            description="StyleGAN faces vs CelebA photos; its own val set is the test split",
        ),
        Source(
            name="sdfd-ffhq",
            path="images/sdfd-ffhq",
            media="images",
            fake_type="diffusion",
            real_origin="FFHQ photos",
            test_fraction=0.3,
            calibration_fraction=0.15,
            description="Stable Diffusion 2.1 faces vs FFHQ photos; split by file",
        ),
        Source(
            name="dfdc-faces",
            path="images/dfdc-faces",
            media="images",
            fake_type="face_swap",
            real_origin="DFDC actors",
            test_fraction=0.2,
            calibration_fraction=0.1,
            description="DFDC face-swap crops vs the crops of their source videos; split by source video",
        ),
        Source(
            name="ffpp",
            path="videos/ffpp",
            media="videos",
            fake_type="face_swap",
            real_origin="FaceForensics++ YouTube videos",
            description="FaceForensics++ c23 videos; grouped by source sequence",
        ),
        Source(
            name="celebdf",
            path="videos/celebdf",
            media="videos",
            fake_type="face_swap",
            real_origin="Celeb-DF interviews",
            description="Celeb-DF v2 one-second clips; grouped by every identity in the name",
        ),
        Source(
            name="celebdf-full",
            path="videos/celebdf-full",
            media="videos",
            fake_type="face_swap",
            real_origin="Celeb-DF interviews",
            description="Celeb-DF v2 full videos of id0 and swaps made from them; grouped with the clips",
        ),
    )
}
IMAGE_SOURCES = tuple(name for name, source in SOURCES.items() if source.media == "images")
VIDEO_SOURCES = tuple(name for name, source in SOURCES.items() if source.media == "videos")


def group_hash(key: str) -> float:
    """A stable number in [0, 1) for a group key (the same on every machine and Python run)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@cache
def _dfdc_metadata(folder: str) -> tuple[dict[str, str], ...]:
    """The rows of DFDC's `metadata.csv` (file, label, source_video, original face width and height)."""
    metadata = Path(folder) / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata} is missing: DFDC crops cannot be split by source video without it")
    with metadata.open(newline="") as handle:
        return tuple(csv.DictReader(handle))


@cache
def _dfdc_source_videos(folder: str) -> dict[str, str]:
    """`metadata.csv`'s file -> source video (a fake's group is the real video it was made from)."""
    return {row["file"]: row["source_video"] for row in _dfdc_metadata(folder)}


def dfdc_face_widths(folder: str | Path) -> dict[str, int]:
    """`metadata.csv`'s file -> the face's width in the video frame it was cut from, in pixels."""
    return {row["file"]: int(row["original_face_width"]) for row in _dfdc_metadata(str(folder))}


# --- videos: groups of shared people, dealt into folds -------------------------------------------------------

_FFPP = re.compile(r"ffpp_(?:[a-z0-9]+_)?(\d+)(?:_(\d+))?")
_CELEB_ID = re.compile(r"id\d+")


def video_identities(stem: str) -> set[str]:
    """Every person a training video shows or borrows a face from, as identity keys.

    FF++: `ffpp_519` is person 519; `ffpp_deepfakes_519_515` is 519's footage with 515's face. Celeb-DF:
    `id0_id1_0005` is id0's footage with id1's face; `id0_0003` is id0; a YouTube real (`00279`) is its own
    person. The clips and the full videos of Celeb-DF use one id space, so `celebdf/id0_id1_0005_segment_1`
    and `celebdf-full/id0_id1_0005` (the same video) land in one group.
    """
    match = _FFPP.fullmatch(stem)
    if match:
        return {f"ffpp:{number}" for number in match.groups() if number}
    identities = {f"celebdf:{identity}" for identity in _CELEB_ID.findall(stem)}
    return identities or {f"celebdf-youtube:{stem.split('_')[0]}"}


def video_groups(stems: list[str]) -> dict[str, str]:
    """Each video (by file stem) -> its group: the connected set of identities it shares with the others.

    Two videos are in one group when they share a person, directly or through other videos (union-find over
    `video_identities`); the group is named by its smallest identity, so names are stable.
    """
    parent: dict[str, str] = {}

    def root(identity: str) -> str:
        while parent.setdefault(identity, identity) != identity:
            parent[identity] = parent[parent[identity]]
            identity = parent[identity]
        return identity

    for stem in stems:
        identities = sorted(video_identities(stem))
        for other in identities[1:]:
            first, second = root(identities[0]), root(other)
            if first != second:
                parent[max(first, second)] = min(first, second)
    return {stem: root(min(video_identities(stem))) for stem in stems}


def deal_folds(groups: dict[str, tuple[int, int]], folds: int = VIDEO_FOLDS) -> dict[str, int]:
    """Whole groups dealt into `folds` folds so each holds out a similar number of real and fake videos.

    `groups` maps a group to its (real videos, fake videos). Largest groups first, each to the fold where
    it least unbalances the real and fake counts (ties: the lower fold number), so the result depends on
    the data alone.
    """
    counts = [[0, 0] for _ in range(folds)]
    assignment: dict[str, int] = {}
    for group, (reals, fakes) in sorted(groups.items(), key=lambda item: (-sum(item[1]), item[0])):
        best = min(
            range(folds),
            key=lambda fold: ((counts[fold][0] + reals) ** 2 + (counts[fold][1] + fakes) ** 2, fold),
        )
        counts[best][0] += reals
        counts[best][1] += fakes
        assignment[group] = best
    return assignment


def split_files(source: Source, data_dir: str | Path, split: str) -> list[tuple[Path, int]]:
    """Every image of `source` in `split`, with its label (fake = 1), in a stable order."""
    from ml.datasets import IMAGE_SUFFIXES, labelled_files

    if source.media != "images":
        raise ValueError(f"{source.name} is a video source: its videos are split into folds, not {split}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    chosen = []
    for part in source.parts:
        folder = source.folder(data_dir, part)
        for path, label in labelled_files(folder, IMAGE_SUFFIXES):
            if source.split_of(data_dir, part, path.relative_to(folder).as_posix()) == split:
                chosen.append((path, label))
    return chosen
