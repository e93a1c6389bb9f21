"""The data sources: splits by group, never by file, stable everywhere; video groups and folds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ml.sources import (
    SOURCES,
    Source,
    deal_folds,
    group_hash,
    split_files,
    video_groups,
    video_identities,
)


def test_group_hash_is_stable_across_runs_and_machines() -> None:
    # A fixed value: the split of every file depends on it, so a change here moves data between splits
    # (and would put faces a shipped model trained on into its test split).
    assert group_hash("dfdc-faces:aaivbtdyjn") == pytest.approx(0.32658839545158924, abs=1e-15)
    assert 0.0 <= group_hash("anything") < 1.0
    assert group_hash("a") != group_hash("b")


def test_a_source_split_keeps_every_group_on_one_side(tmp_path: Path) -> None:
    source = Source(name="toy", path="toy", media="images", fake_type="gan", real_origin="toy", test_fraction=0.3)
    splits = {source.split_of(tmp_path, "", f"real/{number}.jpg") for number in range(200)}
    assert splits == {"train", "test"}
    # The same file always lands in the same split.
    assert source.split_of(tmp_path, "", "real/7.jpg") == source.split_of(tmp_path, "", "real/7.jpg")


def test_a_fixed_test_part_is_the_whole_test_split(tmp_path: Path) -> None:
    source = SOURCES["stylegan-celeba"]
    assert source.split_of(tmp_path, "val", "real/000001.jpg") == "test"
    assert {source.split_of(tmp_path, "train", f"fake/{n}.jpg") for n in range(100)} == {"train", "calibration"}


def test_dfdc_fakes_and_their_source_video_share_a_split(data_dir: Path) -> None:
    source = SOURCES["dfdc-faces"]
    metadata = (source.folder(data_dir) / "metadata.csv").read_text().splitlines()[1:]
    by_group: dict[str, set[str]] = {}
    for line in metadata:
        file, _label, group = line.split(",")[:3]
        by_group.setdefault(group, set()).add(source.split_of(data_dir, "", file))
    assert all(len(splits) == 1 for splits in by_group.values())
    pairs = [group for group in by_group if sum(line.split(",")[2] == group for line in metadata[:400]) == 2]
    assert pairs, "the metadata pairs fakes with the real crop of their source video"


def test_split_files_partition_a_source_without_overlap(data_dir: Path) -> None:
    source = SOURCES["sdfd-ffhq"]
    seen: Counter[Path] = Counter()
    for split in ("train", "calibration", "test"):
        files = split_files(source, data_dir, split)
        assert files and {label for _path, label in files} == {0, 1}
        seen.update(path for path, _label in files)
    assert max(seen.values()) == 1
    assert sum(seen.values()) == 500


def test_split_files_refuses_video_sources_and_unknown_splits(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="video source"):
        split_files(SOURCES["ffpp"], data_dir, "test")
    with pytest.raises(ValueError, match="unknown split"):
        split_files(SOURCES["sdfd-ffhq"], data_dir, "val")


def test_video_identities_name_target_and_donor() -> None:
    assert video_identities("ffpp_519") == {"ffpp:519"}
    assert video_identities("ffpp_deepfakes_519_515") == {"ffpp:519", "ffpp:515"}
    assert video_identities("id0_id1_0005_segment_1") == {"celebdf:id0", "celebdf:id1"}
    assert video_identities("id0_0003") == {"celebdf:id0"}
    assert video_identities("00279_segment_1") == {"celebdf-youtube:00279"}


def test_videos_sharing_a_person_through_others_share_a_group() -> None:
    groups = video_groups(["id0_0000", "id0_id1_0005", "id17_id1_0000_segment_1", "id21_0009_segment_1"])
    assert groups["id0_0000"] == groups["id0_id1_0005"] == groups["id17_id1_0000_segment_1"]
    assert groups["id21_0009_segment_1"] != groups["id0_0000"]


def test_a_clip_and_the_full_video_it_was_cut_from_share_a_group(data_dir: Path) -> None:
    stems = [
        path.stem for name in ("celebdf", "celebdf-full") for path in SOURCES[name].folder(data_dir).rglob("*.mp4")
    ]
    groups = video_groups(stems)
    assert groups["id0_id1_0005_segment_1"] == groups["id0_id1_0005"] == groups["id0_0000"]


def test_folds_hold_whole_groups_with_both_labels_spread() -> None:
    groups = {f"g{number}": (1, 1) for number in range(8)} | {"big": (5, 8), "real-only": (1, 0)}
    folds = deal_folds(groups, 4)
    assert set(folds) == set(groups)
    assert sorted(set(folds.values())) == [0, 1, 2, 3]
    per_fold = Counter(folds.values())
    assert max(per_fold.values()) - min(per_fold.values()) <= 3
    assert deal_folds(groups, 4) == folds
