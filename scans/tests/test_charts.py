"""The detail page's timeline chart: geometry from a video analysis, nothing for a photo."""

from __future__ import annotations

from ml.result import Analysis, Decision, FaceResult, KeyFrame, MediaInfo, TrackResult, VideoScoring
from scans.charts import timeline_chart


def test_the_timeline_chart_puts_time_on_x_and_probability_on_y():
    person = TrackResult(
        index=0,
        box=(0, 0, 10, 10),
        fake_probability=0.5,
        verdict="fake",
        frame_indices=(0, 10, 20),
        frame_scores=(0.0, 1.0, 0.5),
        key_frames=(KeyFrame(index=10, time_s=1.0, fake_probability=1.0, image="track-0-frame-10.jpg"),),
    )
    analysis = Analysis(
        kind="video",
        verdict="fake",
        fake_probability=0.5,
        faces=(person,),
        media=MediaInfo(fps=10.0, duration_s=2.0),
        decision=Decision(threshold=0.5, uncertain_low=0.35, uncertain_high=0.65),
    )

    scoring = VideoScoring(method="share_over_threshold", frame_threshold=0.5, sequence_weight=0.0)

    chart = timeline_chart(analysis, scoring=scoring)

    [track] = chart["tracks"]
    first, middle, last = track["markers"]
    assert first["x"] == chart["left"] and last["x"] == chart["right"]
    assert first["y"] == chart["bottom"] and middle["y"] == chart["top"]
    assert middle["key"] and not first["key"]
    assert chart["frame_threshold"]["y"] == last["y"]
    assert chart["band"]["height"] > 0
    assert (middle["seek_s"], middle["percent"], first["percent"]) == (1.0, "> 99.9%", "< 0.1%")


def test_the_timeline_draws_each_persons_own_score_as_a_level_line():
    person = TrackResult(
        index=0,
        box=(0, 0, 10, 10),
        fake_probability=0.25,
        verdict="real",
        frame_indices=(0, 10),
        frame_scores=(0.1, 0.9),
    )
    analysis = Analysis(kind="video", verdict="real", fake_probability=0.25, faces=(person,), media=MediaInfo(fps=10.0))

    [track] = timeline_chart(analysis)["tracks"]

    assert track["number"] == 1
    assert track["level"]["percent"] == "25.0%"
    assert track["markers"][0]["y"] > track["level"]["y"] > track["markers"][1]["y"]


def test_no_timeline_for_an_image_result():
    face = FaceResult(index=0, box=(0, 0, 10, 10), fake_probability=0.2, verdict="real")

    assert timeline_chart(Analysis(kind="image", verdict="real", fake_probability=0.2, faces=(face,))) is None
