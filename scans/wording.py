"""The words the pages and exports use for a verdict and for a face's manipulation type, said once."""

from __future__ import annotations

from ml.result import Manipulation
from scans.models import Scan

VERDICT_HEADLINES = {
    Scan.Verdict.REAL: "Likely real",
    Scan.Verdict.FAKE: "Likely a deepfake",
    Scan.Verdict.UNCERTAIN: "Uncertain: the model cannot tell",
    Scan.Verdict.NO_FACE: "No face found, so there is nothing to judge",
}
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
