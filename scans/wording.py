"""The words the pages and exports use for a verdict and for a face's manipulation type, said once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ml.result import Manipulation, ScoredFace, TrackResult, VideoScoring
from scans.models import Scan

if TYPE_CHECKING:
    from scans.batches import BatchProgress

VERDICT_HEADLINES = {
    Scan.Verdict.REAL: "Likely real",
    Scan.Verdict.FAKE: "Likely a deepfake",
    Scan.Verdict.UNCERTAIN: "Uncertain: the model cannot tell",
    Scan.Verdict.NO_FACE: "No face found, so there is nothing to judge",
}
# Reviewer labels (newsroom.ScanReview.Label) as a sentence says them.
REVIEW_LABEL_TEXT = {"confirmed_fake": "confirmed fake", "confirmed_real": "confirmed real", "disputed": "disputed"}
# The headline of a verdict downgraded because the input is outside what the models can judge; the reasons
# (`Analysis.out_of_scope`) are its subtitle.
OUT_OF_SCOPE_HEADLINE = "Uncertain: this input is outside what the model can judge"
# The manipulation head's type names (ml.image_model.MANIPULATION_TYPES) as people say them.
MANIPULATION_NAMES = {"face_swap": "face swap", "gan": "GAN portrait", "diffusion": "diffusion portrait"}
MANIPULATION_EXPLAINED = (
    "Which kind of fake this face most resembles. The verdict comes from the fake probability only; "
    "this says what a fake would most likely be, not whether it is one."
)


def manipulation_name(type_name: str) -> str:
    return MANIPULATION_NAMES.get(type_name, type_name.replace("_", " "))


def manipulation_text(manipulation: Manipulation | None) -> str:
    """ "most like: face swap (82%)", or "" for a model without the manipulation head."""
    if manipulation is None:
        return ""
    return f"most like: {manipulation_name(manipulation.most_likely)} ({manipulation.probability:.0%})"


def percent_text(probability: float | None) -> str:
    """A probability as every page, export and list shows it: one decimal, never "0.0%" or "100.0%".

    A model's probability is never certainty, and a rounded "100.0%" reads as if it were: the ends are
    shown as "> 99.9%" and "< 0.1%". None (no score) is an em dash.
    """
    if probability is None:
        return "\u2014"
    percent = float(probability) * 100
    if percent >= 99.95:
        return "> 99.9%"
    if percent < 0.05:
        return "< 0.1%"
    return f"{percent:.1f}%"


def verdict_counts_text(faces: Sequence[ScoredFace], *, video: bool) -> str:
    """ "2 people, 1 likely fake" (videos count tracked people, never detections) or "3 faces, none likely fake"."""
    noun = ("person", "people") if video else ("face", "faces")
    fakes = sum(1 for face in faces if face.verdict == Scan.Verdict.FAKE)
    uncertain = sum(1 for face in faces if face.verdict == Scan.Verdict.UNCERTAIN)
    parts = [f"{len(faces)} {noun[0] if len(faces) == 1 else noun[1]}", f"{fakes or 'none'} likely fake"]
    if uncertain:
        parts.append(f"{uncertain} uncertain")
    return ", ".join(parts)


_AGGREGATE_WORDS = {
    "mean_logit": "their average",
    "trimmed_mean_logit": "their average without the highest and lowest {trim:.0%}",
    "top_quarter_logit": "the average of the highest quarter ({top} of {total})",
    "share_over_threshold": "the share of frames over the frame threshold ({over} of {total})",
}


def scoring_sentence(person: TrackResult, scoring: VideoScoring | None) -> str:
    """One plain sentence saying where a person's score comes from: how much the sequence model weighed, or
    how the frame scores were combined (the version's `combine` and `aggregate` settings)."""
    if scoring is None:
        return ""
    total = len(person.frame_scores)
    if scoring.sequence_weight > 0:
        sentence = (
            f"A sequence model that reads the frames in order contributed {scoring.sequence_weight:.0%} of this score"
        )
        if scoring.sequence_weight < 1:
            sentence += f"; the rest combines the {total} frame scores: {_aggregate_words(person, scoring)}"
        return sentence + "."
    return (
        f"This score combines the {total} frame score{'' if total == 1 else 's'}: {_aggregate_words(person, scoring)}."
    )


def _aggregate_words(person: TrackResult, scoring: VideoScoring) -> str:
    total = len(person.frame_scores)
    template = _AGGREGATE_WORDS.get(scoring.method, scoring.method.replace("_", " "))
    return template.format(
        trim=scoring.trim or 0.0,
        top=max(1, -(-total // 4)),
        total=total,
        over=scoring.frames_over_threshold(person.frame_scores),
    )


_BATCH_VERDICT_WORDS = (
    (Scan.Verdict.FAKE, "likely fake"),
    (Scan.Verdict.UNCERTAIN, "uncertain"),
    (Scan.Verdict.REAL, "likely real"),
    (Scan.Verdict.NO_FACE, "no face found"),
)


def batch_summary_text(progress: BatchProgress) -> str:
    """ "2 likely fake, 1 uncertain, 3 likely real, 1 failed": the finished scans of a batch by verdict."""
    parts = [
        f"{progress.by_verdict[verdict]} {words}"
        for verdict, words in _BATCH_VERDICT_WORDS
        if progress.by_verdict.get(verdict)
    ]
    if failed := progress.by_status.get(Scan.Status.FAILED, 0):
        parts.append(f"{failed} failed")
    return ", ".join(parts)


def review_sentence(*, label: str, reviewer_name: str, reviewed_at: datetime) -> str:
    """ "Reviewed: confirmed fake by anna, 1 Dec 2026 10:40 UTC": a human decision, said above the model's verdict."""
    moment = reviewed_at.astimezone(UTC)
    label_text = REVIEW_LABEL_TEXT.get(label, label.replace("_", " "))
    return f"Reviewed: {label_text} by {reviewer_name}, {moment.day} {moment:%b %Y %H:%M} UTC"
