"""Which frames drove a person's verdict: the ones that pushed their score up, by the version's aggregate."""

from __future__ import annotations

from ml.explain import KEY_FRAMES_PER_TRACK, key_frames_of
from ml.result import TrackResult, VideoScoring

MEAN = VideoScoring(method="trimmed_mean_logit", frame_threshold=0.7, sequence_weight=0.0, trim=0.2)
N_OF_M = VideoScoring(method="share_over_threshold", frame_threshold=0.7, sequence_weight=0.0)


def _person(scores: list[float], probability: float, verdict: str = "fake") -> TrackResult:
    return TrackResult(
        index=0,
        box=(0, 0, 80, 80),
        fake_probability=probability,
        verdict=verdict,
        frame_indices=tuple(range(0, 10 * len(scores), 10)),
        frame_scores=tuple(scores),
    )


def test_for_an_average_the_key_frames_are_those_above_the_persons_score_highest_first() -> None:
    person = _person([0.2, 0.9, 0.5, 0.95, 0.61], probability=0.6)

    assert key_frames_of(person, MEAN) == [(30, 0.95), (10, 0.9), (40, 0.61)]


def test_for_n_of_m_the_key_frames_are_those_over_the_frame_threshold() -> None:
    person = _person([0.2, 0.9, 0.5, 0.7, 0.69], probability=0.3, verdict="uncertain")

    assert key_frames_of(person, N_OF_M) == [(10, 0.9), (30, 0.7)]


def test_at_most_six_key_frames_are_kept() -> None:
    person = _person([0.9 + index / 100 for index in range(9)], probability=0.8)

    frames = key_frames_of(person, N_OF_M)

    assert len(frames) == KEY_FRAMES_PER_TRACK == 6
    assert [score for _frame, score in frames] == sorted((score for _frame, score in frames), reverse=True)


def test_a_person_called_real_has_no_key_frames() -> None:
    assert key_frames_of(_person([0.9, 0.1, 0.1], probability=0.2, verdict="real"), MEAN) == []
