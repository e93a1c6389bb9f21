"""The typed result's pieces the pages explain: how a video version scores a person, read from its settings."""

from __future__ import annotations

import pytest

from ml.result import Analysis, VideoScoring


def test_v2_settings_give_the_aggregate_the_frame_threshold_and_no_sequence_weight() -> None:
    settings = {
        "aggregate": {"method": "share_over_threshold", "frame_logit_cut": 0.99},
        "frame_threshold": 0.7289,
        "combine": {"method": "aggregate only", "sequence_weight": 0.0},
    }

    scoring = VideoScoring.from_settings(settings)

    assert (scoring.method, scoring.frame_threshold, scoring.sequence_weight) == ("share_over_threshold", 0.7289, 0.0)
    assert scoring.frames_over_threshold([0.1, 0.7289, 0.9]) == 2


def test_v1_settings_without_a_frame_threshold_take_the_one_given() -> None:
    settings = {"aggregate": {"method": "trimmed_mean_logit", "trim": 0.2}, "combine": {"sequence_weight": 1.0}}

    scoring = VideoScoring.from_settings(settings, frame_threshold=0.7289)

    assert (scoring.frame_threshold, scoring.sequence_weight, scoring.trim) == (0.7289, 1.0, 0.2)


def test_an_n_of_m_cut_in_logits_gives_the_frame_threshold_where_none_is_named() -> None:
    scoring = VideoScoring.from_settings({"aggregate": {"method": "share_over_threshold", "frame_logit_cut": 0.0}})

    assert scoring.frame_threshold == pytest.approx(0.5)


def test_the_scoring_and_the_out_of_scope_reasons_survive_the_stored_document() -> None:
    scoring = VideoScoring(method="mean_logit", frame_threshold=0.6, sequence_weight=0.5)
    analysis = Analysis(
        kind="video", verdict="uncertain", fake_probability=0.5, out_of_scope=("too small",), scoring=scoring
    )

    again = Analysis.from_json(analysis.to_json(), kind="video")

    assert again.scoring == scoring and again.out_of_scope == ("too small",)
