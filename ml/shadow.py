"""Shadow scoring: a candidate model version rescores the very face crops another analysis scored.

Shadow mode (see `scans.shadow`) compares a candidate with the active version on real uploads. For the
comparison to be about the models and nothing else, the candidate sees exactly what the active version saw:
the same face boxes of a photo, the same sampled frames and tracks of a video. The analysis cuts the
candidate's crops (its own crop rule) in the same pass as its own (`Analyzer.analyze(crop_rules=...)`), so
neither MTCNN nor the decoder runs again; only the candidate's crop rule, calibration and decision band apply.
"""

from __future__ import annotations

import time

import numpy as np

from ml.faces import CropRule
from ml.image_model import ImageModel
from ml.inference import FrameScorer, ImageScorer
from ml.pipeline import ModelSpec
from ml.result import IMAGE, VIDEO, Analysis, Decision, ShadowFace, ShadowOutcome, rounded
from ml.runtime import configure_tensorflow
from ml.video_model import VideoModel


class ShadowScorer:
    """One loaded candidate version (image or video model), built once per worker process."""

    def __init__(self, spec: ModelSpec, *, kind: str) -> None:
        if kind not in {IMAGE, VIDEO}:
            raise ValueError(f"unknown model kind {kind!r}")
        configure_tensorflow()
        self.spec = spec
        self.kind = kind
        self.decision = Decision.from_settings(spec.settings)
        if kind == IMAGE:
            self.video_model = None
            self._scorer: ImageScorer | FrameScorer = ImageScorer(ImageModel.load(spec.weights_path, spec.settings))
        else:
            self.video_model = VideoModel.load(spec.weights_path, spec.settings)
            self._scorer = FrameScorer(self.video_model)

    @property
    def crop_rule(self) -> CropRule:
        """The crops this candidate needs: what the analysis must cut for it (`crop_rules`)."""
        return self._scorer.crop_rule

    def score(self, analysis: Analysis) -> ShadowOutcome:
        """The candidate's verdict on the faces (photo) or tracked people (video) of `analysis`.

        The verdict is `no_face` when the analysis found no face. Raises ValueError for an analysis of the
        other kind, or one that did not keep crops cut by this candidate's crop rule.
        """
        if analysis.kind != self.kind:
            raise ValueError(f"a {self.kind} candidate cannot score a {analysis.kind!r} analysis")
        crops = analysis.crops.get(self.crop_rule)
        if crops is None:
            raise ValueError(f"the analysis kept no crops by this candidate's crop rule {self.crop_rule}")
        started = time.perf_counter()
        probabilities = self._probabilities(list(crops)) if crops else []
        finished = time.perf_counter()
        faces = tuple(
            ShadowFace(
                index=face.index, fake_probability=rounded(probability), verdict=self.decision.verdict(probability)
            )
            for face, probability in zip(analysis.faces, probabilities, strict=True)
        )
        fake_probability = rounded(max(probabilities)) if faces else None
        return ShadowOutcome(
            verdict="no_face" if fake_probability is None else self.decision.verdict(fake_probability),
            fake_probability=fake_probability,
            faces=faces,
            timings={"decode_s": 0.0, "model_s": round(finished - started, 4), "total_s": round(finished - started, 4)},
            model=self.spec.label,
        )

    def _probabilities(self, crops: list[np.ndarray]) -> list[float]:
        """One fake probability per face (one crop each) or per person (their crops in time order), from one
        batched call over every crop."""
        predictions = self._scorer.predict(np.concatenate(crops))
        if self.video_model is None:
            return [float(probability) for probability in predictions.probabilities]
        scores, offset = [], 0
        for person_crops in crops:
            person = predictions.slice(offset, offset + len(person_crops))
            offset += len(person_crops)
            scores.append(self.video_model.score_track(person.embeddings, person.logits).fake_probability)
        return scores
