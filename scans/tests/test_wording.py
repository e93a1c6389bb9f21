"""The words and numbers every page, export and list shows the same way."""

from __future__ import annotations

import pytest

from ml.result import FaceResult, TrackResult, VideoScoring
from scans.wording import percent_text, scoring_sentence, verdict_counts_text


@pytest.mark.parametrize(
    ("probability", "text"),
    [(0.9995, "> 99.9%"), (1.0, "> 99.9%"), (0.99949, "99.9%"), (0.947, "94.7%"), (0.0005, "0.1%"), (0.0004, "< 0.1%")],
)
def test_a_probability_is_never_shown_as_certainty(probability: float, text: str) -> None:
    assert percent_text(probability) == text


def test_no_probability_is_a_dash() -> None:
    assert percent_text(None) == "\u2014"


def _person(index: int, verdict: str, scores: tuple[float, ...] = (0.1, 0.8, 0.9, 0.2)) -> TrackResult:
    return TrackResult(
        index=index,
        box=(0, 0, 80, 80),
        fake_probability=0.6,
        verdict=verdict,
        frame_indices=tuple(range(len(scores))),
        frame_scores=scores,
    )


def test_people_are_counted_as_tracks_with_how_many_are_likely_fake() -> None:
    assert verdict_counts_text([_person(0, "fake"), _person(1, "real")], video=True) == "2 people, 1 likely fake"
    faces = [FaceResult(index=0, box=(0, 0, 9, 9), fake_probability=0.5, verdict="uncertain")]
    assert verdict_counts_text(faces, video=False) == "1 face, none likely fake, 1 uncertain"


def test_an_n_of_m_score_says_how_many_frames_were_over_the_frame_threshold() -> None:
    scoring = VideoScoring(method="share_over_threshold", frame_threshold=0.75, sequence_weight=0.0)

    assert scoring_sentence(_person(0, "fake"), scoring) == (
        "This score combines the 4 frame scores: the share of frames over the frame threshold (2 of 4)."
    )


def test_a_sequence_model_score_says_how_much_it_weighed() -> None:
    scoring = VideoScoring(method="trimmed_mean_logit", frame_threshold=0.75, sequence_weight=1.0, trim=0.2)

    assert scoring_sentence(_person(0, "fake"), scoring) == (
        "A sequence model that reads the frames in order contributed 100% of this score."
    )
