"""Geometry of the detail page's server-drawn SVG timeline (templates/scans/_timeline.html): per tracked person
their frame scores over the video's time axis and, as a level line, the score their verdict comes from; with
the frame threshold and the uncertain band that person's score is read against."""

from __future__ import annotations

from typing import Any

from ml.result import Analysis, TrackResult, VideoScoring
from scans.wording import percent_text

CHART_WIDTH = 640
CHART_HEIGHT = 220
_PLOT_LEFT, _PLOT_RIGHT, _PLOT_TOP, _PLOT_BOTTOM = 44, 12, 12, 30
TICK_COUNT = 5


def timeline_chart(analysis: Analysis, *, scoring: VideoScoring | None = None) -> dict[str, Any] | None:
    """Coordinates for the timeline of a video analysis, or None when there is nothing to draw.

    x is the video's time axis (frame number / fps, over the whole duration), y the fake probability from 0
    (bottom) to 1 (top). Each person has their frame scores (the key frames flagged, each with its time so
    the page can seek the player there) and a level line at their own score, the number their verdict
    comes from; `scoring` gives the frame threshold line.
    """
    people: list[TrackResult] = [face for face in analysis.faces if analysis.is_video and face.frame_scores]
    if not people:
        return None
    fps = analysis.media.fps if analysis.media.fps and analysis.media.fps > 0 else None

    def seconds(frame: int) -> float:
        return frame / fps if fps else float(frame)

    last_time = max(seconds(frame) for person in people for frame in person.frame_indices or (0,))
    duration = analysis.media.duration_s if fps else None
    span = max(float(duration or 0.0), last_time, 1e-6)
    plot_width = CHART_WIDTH - _PLOT_LEFT - _PLOT_RIGHT
    plot_height = CHART_HEIGHT - _PLOT_TOP - _PLOT_BOTTOM

    def x_of(time_s: float) -> float:
        return round(_PLOT_LEFT + time_s / span * plot_width, 1)

    def y_of(probability: float) -> float:
        return round(_PLOT_TOP + (1.0 - min(max(probability, 0.0), 1.0)) * plot_height, 1)

    tracks = []
    for person in people:
        key = {key_frame.index for key_frame in person.key_frames}
        markers = [
            {
                "x": x_of(seconds(frame)),
                "y": y_of(score),
                "frame": frame,
                "time_s": round(seconds(frame), 2),
                "percent": percent_text(score),
                "key": frame in key,
                # Where the player seeks to; None without a frame rate (the x axis is then frame numbers).
                "seek_s": round(frame / fps, 3) if fps else None,
            }
            # Not strict: a stored result with mismatched lists still draws what pairs up.
            for frame, score in zip(person.frame_indices, person.frame_scores, strict=False)
        ]
        tracks.append(
            {
                "number": person.index + 1,
                "verdict": person.verdict or "unknown",
                "level": {"y": y_of(person.fake_probability), "percent": percent_text(person.fake_probability)},
                "points": " ".join(f"{marker['x']},{marker['y']}" for marker in markers),
                "markers": markers,
            }
        )
    decision = analysis.decision
    band = None
    if decision is not None and decision.uncertain_high > decision.uncertain_low:
        band = {
            "y": y_of(decision.uncertain_high),
            "height": round(y_of(decision.uncertain_low) - y_of(decision.uncertain_high), 1),
        }
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": _PLOT_LEFT,
        "right": CHART_WIDTH - _PLOT_RIGHT,
        "plot_width": plot_width,
        "top": _PLOT_TOP,
        "bottom": CHART_HEIGHT - _PLOT_BOTTOM,
        "time_unit": "s" if fps else "frame",
        "frame_threshold": None
        if scoring is None
        else {"y": y_of(scoring.frame_threshold), "percent": percent_text(scoring.frame_threshold)},
        "band": band,
        "tracks": tracks,
        "x_ticks": [
            {"x": x_of(span * step / TICK_COUNT), "label": f"{span * step / TICK_COUNT:.1f}"}
            for step in range(TICK_COUNT + 1)
        ],
        "y_ticks": [{"y": y_of(value / 100), "label": f"{value}%"} for value in (0, 25, 50, 75, 100)],
    }
