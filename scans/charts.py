"""Geometry of the detail page's server-drawn SVG timeline (templates/scans/_timeline.html): fake probability
per tracked person over the video's time axis, with the decision threshold and the uncertain band."""

from __future__ import annotations

from typing import Any

from ml.result import Analysis, TrackResult

CHART_WIDTH = 640
CHART_HEIGHT = 220
_PLOT_LEFT, _PLOT_RIGHT, _PLOT_TOP, _PLOT_BOTTOM = 44, 12, 12, 30
TICK_COUNT = 5


def timeline_chart(analysis: Analysis) -> dict[str, Any] | None:
    """Coordinates for the timeline of a video analysis, or None when there is nothing to draw.

    x is the video's time axis (frame number / fps, over the whole duration), y the fake probability from 0
    (bottom) to 1 (top); the key frames are flagged so the template can highlight them.
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
                "percent": round(score * 100, 1),
                "key": frame in key,
            }
            # Not strict: a stored result with mismatched lists still draws what pairs up.
            for frame, score in zip(person.frame_indices, person.frame_scores, strict=False)
        ]
        tracks.append(
            {
                "index": person.index,
                "verdict": person.verdict or "unknown",
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
        "threshold": None
        if decision is None
        else {"y": y_of(decision.threshold), "percent": round(decision.threshold * 100, 1)},
        "band": band,
        "tracks": tracks,
        "x_ticks": [
            {"x": x_of(span * step / TICK_COUNT), "label": f"{span * step / TICK_COUNT:.1f}"}
            for step in range(TICK_COUNT + 1)
        ],
        "y_ticks": [{"y": y_of(value / 100), "label": f"{value}%"} for value in (0, 25, 50, 75, 100)],
    }
