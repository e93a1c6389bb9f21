"""The one adapter between Django and `ml/`: builds an `ml.pipeline.Analyzer` from `ModelVersion` rows.

Building an Analyzer loads MTCNN and the Keras models (seconds), so each worker process keeps the ones it
built, keyed by the model version ids, and reuses them across jobs. Only a few are kept: after an
activation, the old versions' analyzer is dropped once newer ones have replaced it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from django.conf import settings
from rq.timeouts import JobTimeoutException

from ml.pipeline import Analyzer, ModelSpec
from ml.shadow import ShadowScorer
from scans.models import Scan
from training.models import ModelVersion
from training.selectors import model_version_active

logger = logging.getLogger(__name__)

_MAX_CACHED_ANALYZERS = 2
_analyzers: OrderedDict[tuple[int, int | None], Analyzer] = OrderedDict()
_analyzers_lock = threading.Lock()
# Shadow candidates (scans.shadow), one per kind at most, cached like the analyzers and keyed by version id.
_MAX_CACHED_SHADOW_SCORERS = 2
_shadow_scorers: OrderedDict[int, ShadowScorer] = OrderedDict()


class NoActiveModel(Exception):
    """No image model version is active, so nothing can be analysed."""


def model_spec_for(model_version: ModelVersion) -> ModelSpec:
    """What `ml` needs to load one version: the weights file's path, its settings and its label."""
    return ModelSpec(
        weights_path=model_version.weights.path,
        settings=dict(model_version.settings or {}),
        label=model_version.label,
    )


def analyzer_for_versions(*, image_version: ModelVersion, video_version: ModelVersion | None) -> Analyzer:
    """The process's Analyzer for these versions, built on first use.

    An image-only request is served by a cached Analyzer that also holds a video model, as long as its
    image model is the one asked for: images never touch the video model.
    """
    key = (image_version.pk, video_version.pk if video_version else None)
    with _analyzers_lock:
        cached_key = key if key in _analyzers else None
        if cached_key is None and video_version is None:
            cached_key = next((candidate for candidate in _analyzers if candidate[0] == image_version.pk), None)
        if cached_key is not None:
            _analyzers.move_to_end(cached_key)
            return _analyzers[cached_key]
        logger.info(
            "Loading analyzer: image model %s, video model %s",
            image_version.label,
            video_version.label if video_version else "none",
        )
        analyzer = Analyzer(
            model_spec_for(image_version),
            model_spec_for(video_version) if video_version else None,
            video_frames=settings.UNMASK_VIDEO_FRAMES,
            max_image_pixels=settings.UNMASK_MAX_IMAGE_PIXELS,
            # A job that runs past its time limit must end as a timeout, never as "evidence missing".
            fatal_errors=(JobTimeoutException,),
        )
        _analyzers[key] = analyzer
        while len(_analyzers) > _MAX_CACHED_ANALYZERS:
            _analyzers.popitem(last=False)
        return analyzer


def analyzer_for_scan(*, scan: Scan) -> Analyzer:
    """The Analyzer for the versions the scan recorded when it was created (not whatever is active now)."""
    if scan.image_model_version is None:
        raise NoActiveModel("this scan has no image model version recorded")
    video_version = scan.video_model_version if scan.kind == Scan.Kind.VIDEO else None
    return analyzer_for_versions(image_version=scan.image_model_version, video_version=video_version)


def analyzer_for_active_versions() -> Analyzer:
    """The Analyzer for the versions active now: what a worker warms up with before its first job."""
    image_version = model_version_active(kind=ModelVersion.Kind.IMAGE)
    if image_version is None:
        raise NoActiveModel("no image model version is active")
    video_version = model_version_active(kind=ModelVersion.Kind.VIDEO)
    return analyzer_for_versions(image_version=image_version, video_version=video_version)


def shadow_scorer_for(candidate: ModelVersion) -> ShadowScorer:
    """The process's loaded shadow candidate `candidate`, built on first use (a version's weights never change)."""
    with _analyzers_lock:
        if candidate.pk in _shadow_scorers:
            _shadow_scorers.move_to_end(candidate.pk)
            return _shadow_scorers[candidate.pk]
        logger.info("Loading shadow candidate %s (%s model)", candidate.label, candidate.kind)
        scorer = ShadowScorer(model_spec_for(candidate), kind=candidate.kind)
        _shadow_scorers[candidate.pk] = scorer
        while len(_shadow_scorers) > _MAX_CACHED_SHADOW_SCORERS:
            _shadow_scorers.popitem(last=False)
        return scorer


def analyzers_clear() -> None:
    """Forget every cached Analyzer and shadow candidate (tests, or a worker told to reload its models)."""
    with _analyzers_lock:
        _analyzers.clear()
        _shadow_scorers.clear()
