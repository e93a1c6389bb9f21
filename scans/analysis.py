"""`scan_analyze`: one scan's analysis, from its row to its stored result, as the job runs it.

The row is loaded once. The analyzer for the versions the scan recorded decodes the media once, and in that
pass scores the faces, explains the scores (crops, heatmaps, key frames, metadata hints) and cuts the crops a
shadow candidate will rescore. The evidence images are stored, the result is written as JSON once
(`Analysis.to_json`), and only then, with the verdict stored and announced, does the candidate run.
"""

from __future__ import annotations

import time
import uuid

from scans.analyzers import analyzer_for_scan
from scans.evidence import evidence_delete, evidence_store
from scans.models import Scan
from scans.services import scan_mark_done, scan_update_progress
from scans.shadow import shadow_candidate_for, shadow_crop_rules, shadow_run

# Progress is written to the row at most this often (plus at every stage change): a video reports after
# every frame, and each write is a database UPDATE the dashboard polls.
PROGRESS_WRITE_INTERVAL_S = 0.5
_PROGRESS_KEYS = ("stage", "frames_done", "frames_total", "faces_found")


def scan_analyze(*, scan_id: uuid.UUID | str) -> str:
    """Analyse a processing scan with the models it recorded and store the result; "done", or "skipped" when
    the scan was deleted or failed meanwhile (its evidence is then removed, as nobody could reach it).

    Raises whatever stops the analysis (`ml.errors.MediaError` for unreadable media, `Scan.DoesNotExist` for
    a scan deleted before it started, a job timeout): the job turns that into a failed scan.
    """
    scan = Scan.objects.select_related("image_model_version", "video_model_version").get(pk=scan_id)
    analyzer = analyzer_for_scan(scan=scan)
    candidate = shadow_candidate_for(scan=scan)
    analysis = analyzer.analyze(
        scan.file.path,
        kind=scan.kind,
        progress=ProgressWriter(scan_id=scan.pk),
        explain=True,
        crop_rules=shadow_crop_rules(candidate),
    )
    analysis = evidence_store(scan_id=scan.pk, analysis=analysis)
    if not scan_mark_done(scan_id=scan.pk, result=analysis.to_json()):
        evidence_delete(scan_id=scan.pk)
        return "skipped"
    shadow_run(scan=scan, analysis=analysis, candidate=candidate)
    return "done"


class ProgressWriter:
    """The progress callback handed to `ml`: keeps the latest payload and writes it to the row, throttled."""

    def __init__(self, *, scan_id: uuid.UUID | str) -> None:
        self.scan_id = scan_id
        self.progress: dict = {}
        self._last_write = float("-inf")

    def __call__(self, payload: dict) -> None:
        stage_changed = "stage" in payload and payload["stage"] != self.progress.get("stage")
        self.progress.update({key: payload[key] for key in _PROGRESS_KEYS if key in payload})
        now = time.monotonic()
        if stage_changed or now - self._last_write >= PROGRESS_WRITE_INTERVAL_S:
            scan_update_progress(scan_id=self.scan_id, progress=dict(self.progress))
            self._last_write = now
