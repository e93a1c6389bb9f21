"""The shareable PDF report of one scan, laid out by ReportLab's document engine (platypus).

Text is set in paragraphs, so a long file name or headline wraps instead of running off the page, and the
document flows onto as many A4 pages as it needs (a long video's key frames and frame table take more). It
reads what the result page reads (`Scan.analysis`, the stored evidence, the words of `scans.wording`), so the
page, the PDF and the JSON tell the same story:

1. the verdict, its reason when the input is out of scope, the probability as the pages round it, and who
   (which people or faces) it comes from;
2. the picture with its face boxes (photos) or the first key frame (videos), and the file's identity;
3. per face or person: the score, the verdict, for videos how the score was made (one sentence), the crop and
   its heatmap, and the frames that drove the verdict;
4. for videos the timeline (frame scores, each person's score as a level line, the frame threshold) and every
   analysed frame's scores;
5. the limits: what the models cannot judge, the model versions and what their cards say they get wrong;
6. notes and metadata hints, labelled as not part of the verdict.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageDraw, ImageOps, UnidentifiedImageError

from ml.pipeline import SCOPE_MAX_FACES, SCOPE_MIN_SIDE_PX, SMALL_FACE_PX
from ml.result import Analysis, TrackResult, VideoScoring
from scans.evidence import EvidenceNotFound, evidence_read
from scans.reviews import scan_review_current
from scans.selectors import scan_video_scoring
from scans.wording import (
    OUT_OF_SCOPE_HEADLINE,
    VERDICT_HEADLINES,
    manipulation_text,
    percent_text,
    review_sentence,
    scoring_sentence,
    verdict_counts_text,
)
from training.selectors import model_card_weaknesses

if TYPE_CHECKING:
    from scans.models import Scan

VERDICT_COLOURS = {"real": "#15803d", "fake": "#b91c1c", "uncertain": "#854d0e"}
NEUTRAL_COLOUR = "#475569"
MUTED_COLOUR = "#5b6476"
PICTURE_MAX_PX = 900
EVIDENCE_SIDE_CM = 3.6
KEY_FRAME_WIDTH_CM = 5.4
KEY_FRAMES_PER_ROW = 3


def scan_report_pdf(*, scan: Scan, with_original: bool = True) -> bytes:
    """The scan's report as PDF bytes (see the module docstring for what it holds). Without the original (a share
    link made without it), a photo is not pictured: its face crops and heatmaps still are."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    analysis = scan.analysis
    styles = _styles()
    scoring = scan_video_scoring(scan=scan, analysis=analysis)
    story: list[Any] = []
    story += _verdict_section(scan, analysis, styles)
    story += _picture_and_facts(scan, analysis, styles, with_original=with_original)
    story += _faces_section(scan, analysis, scoring, styles)
    if analysis.is_video:
        story += _timeline_section(analysis, scoring, styles)
    story += _limits_section(scan, analysis, styles)
    story += _notes_section(analysis, styles)

    buffer = io.BytesIO()
    generated = timezone.now()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=1.8 * cm,
        rightMargin=1.8 * cm,
        topMargin=1.6 * cm,
        bottomMargin=1.8 * cm,
        title=f"Unmask scan report: {scan.original_filename}",
        author="Unmask",
        creator="Unmask",
        subject=VERDICT_HEADLINES.get(scan.verdict, scan.get_status_display()),
    )

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(_font(), 7.5)
        canvas.setFillColor(_colour(MUTED_COLOUR))
        canvas.drawString(
            doc.leftMargin,
            1.0 * cm,
            f"Unmask report, generated {generated:%Y-%m-%d %H:%M %Z}. A verdict is a model's estimate, not proof.",
        )
        canvas.drawRightString(A4[0] - doc.rightMargin, 1.0 * cm, f"page {doc.page}")
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


# --- sections ----------------------------------------------------------------------------------------


def _verdict_section(scan: Scan, analysis: Analysis, styles: dict[str, Any]) -> list[Any]:
    from reportlab.platypus import Paragraph, Spacer

    out_of_scope = list(analysis.out_of_scope) if scan.verdict == "uncertain" else []
    headline = OUT_OF_SCOPE_HEADLINE if out_of_scope else VERDICT_HEADLINES.get(scan.verdict, scan.get_status_display())
    colour = VERDICT_COLOURS.get(scan.verdict, NEUTRAL_COLOUR)
    story: list[Any] = [
        Paragraph("Unmask scan report", styles["title"]),
        Paragraph(_text(scan.original_filename), styles["filename"]),
        Spacer(1, 6),
    ]
    # A human decision comes before the model's verdict.
    review = scan_review_current(scan=scan)
    if review is not None:
        sentence = review_sentence(
            label=review.label, reviewer_name=review.reviewer_name, reviewed_at=review.created_at
        )
        story.append(Paragraph(f"<b>{_text(sentence)}</b>", styles["lead"]))
        if review.note:
            story.append(Paragraph(_text(review.note), styles["body"]))
        story.append(Paragraph("The model's verdict:", styles["muted"]))
    story.append(Paragraph(f'<font color="{colour}">{_text(headline)}</font>', styles["headline"]))
    for reason in out_of_scope:
        story.append(Paragraph(_text(_sentence(reason)), styles["subtitle"]))
    if scan.fake_probability is not None:
        story.append(
            Paragraph(
                f"<b>{_text(percent_text(scan.fake_probability))}</b> probability that this "
                f"{scan.get_kind_display().lower()} is fake",
                styles["lead"],
            )
        )
    if analysis.faces:
        counts = verdict_counts_text(analysis.faces, video=analysis.is_video)
        subject = "person" if analysis.is_video else "face"
        tail = f": the {scan.get_kind_display().lower()} takes the verdict of its most suspicious {subject}"
        story.append(
            Paragraph(
                _text(counts[0].upper() + counts[1:] + (tail if len(analysis.faces) > 1 else "")) + ".", styles["body"]
            )
        )
    if analysis.decision is not None:
        decision = analysis.decision
        story.append(
            Paragraph(
                _text(
                    f"Scores from {percent_text(decision.uncertain_low)} to {percent_text(decision.uncertain_high)} "
                    "are uncertain: the model does not call them real or fake. Above the band a "
                    f"{'person' if analysis.is_video else 'face'} is called fake, below it real."
                ),
                styles["muted"],
            )
        )
    if scan.status == "failed":
        story.append(Paragraph(_text(f"The analysis failed: {scan.error_message}"), styles["body"]))
    return story


def _picture_and_facts(
    scan: Scan, analysis: Analysis, styles: dict[str, Any], *, with_original: bool = True
) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

    picture = _picture(scan, analysis) if with_original or analysis.is_video else None
    facts = [
        ("Kind", f"{scan.get_kind_display()} ({scan.content_type}, {scan.size_bytes:,} bytes)"),
        ("SHA-256", scan.sha256),
        ("Uploaded", _moment(scan.created_at)),
        ("Analysed", _moment(scan.finished_at)),
        ("Image model", analysis.models.image or _label(scan.image_model_version)),
    ]
    if analysis.is_video:
        facts.append(("Video model", analysis.models.video or _label(scan.video_model_version)))
        media = analysis.media
        if media.duration_s:
            facts.append(("Duration", f"{media.duration_s:.1f} s, {media.frames_analyzed or 0} frames analysed"))
    if scan.reused_from_id:
        facts.append(("Reused", f"the result of scan {scan.reused_from_id} (same file, same models)"))
    stages = ", ".join(
        f"{stage.name.removesuffix('_s')} {seconds:.2f} s"
        for stage in fields(analysis.timings)
        if (seconds := getattr(analysis.timings, stage.name)) is not None
    )
    if stages:
        facts.append(("Timings", stages))
    facts_table = Table(
        [
            [Paragraph(_text(name), styles["small_bold"]), Paragraph(_text(value or "-"), styles["small"])]
            for name, value in facts
        ],
        colWidths=[2.4 * cm, None],
    )
    facts_table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    if picture is None:
        return [Spacer(1, 8), facts_table]
    layout = Table([[picture, facts_table]], colWidths=[8.2 * cm, None])
    layout.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (0, 0), 0),
                ("LEFTPADDING", (1, 0), (1, 0), 10),
            ]
        )
    )
    return [Spacer(1, 8), layout]


def _faces_section(scan: Scan, analysis: Analysis, scoring: VideoScoring | None, styles: dict[str, Any]) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

    if not analysis.faces:
        return []
    subject = "Person" if analysis.is_video else "Face"
    story: list[Any] = [
        Spacer(1, 10),
        Paragraph("People tracked" if analysis.is_video else "Faces", styles["heading"]),
    ]
    if analysis.is_video and scoring is not None:
        story.append(
            Paragraph(
                _text(
                    "Each person's score is the number their verdict comes from; a single frame counts as fake at "
                    f"or above the frame threshold, {percent_text(scoring.frame_threshold)}."
                ),
                styles["muted"],
            )
        )
    for face in analysis.faces:
        number = face.index + 1
        colour = VERDICT_COLOURS.get(face.verdict, NEUTRAL_COLOUR)
        lines = [
            f"<b>{subject} {number}: {_text(percent_text(face.fake_probability))}</b> "
            f'<font color="{colour}">{_text(face.verdict)}</font>'
        ]
        if face.out_of_scope:
            lines.append(_text(_sentence(face.out_of_scope)))
        if isinstance(face, TrackResult):
            lines.append(_text(scoring_sentence(face, scoring)))
            if scoring is not None:
                lines.append(
                    _text(
                        f"{face.n_frames} frames, {scoring.frames_over_threshold(face.frame_scores)} over the frame "
                        "threshold."
                    )
                )
        if face.manipulation is not None:
            lines.append(
                f'<font color="{MUTED_COLOUR}">{_text(manipulation_text(face.manipulation))} (not the verdict)</font>'
            )
        text = Paragraph("<br/>".join(line for line in lines if line), styles["body"])
        images = [
            image
            for name in (face.crop, face.heatmap)
            if (image := _evidence_image(scan, name, width_cm=EVIDENCE_SIDE_CM)) is not None
        ]
        row = Table([[text, *images]], colWidths=[None, *([EVIDENCE_SIDE_CM * cm + 4] * len(images))])
        row.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
        block: list[Any] = [Spacer(1, 6), row]
        if isinstance(face, TrackResult) and face.key_frames:
            block += _key_frames(scan, face, styles)
        story.append(KeepTogether(block))
    story.append(
        Paragraph(
            "The crop is what the model scored; the heatmap (Grad-CAM) colours what raised the fake score.",
            styles["muted"],
        )
    )
    return story


def _key_frames(scan: Scan, person: TrackResult, styles: dict[str, Any]) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, Table, TableStyle

    cells = []
    for frame in person.key_frames:
        image = _evidence_image(scan, frame.image, width_cm=KEY_FRAME_WIDTH_CM)
        time = f" at {frame.time_s:.2f} s" if frame.time_s is not None else ""
        caption = Paragraph(
            _text(f"frame {frame.index}{time}: {percent_text(frame.fake_probability)}"), styles["small"]
        )
        cells.append([image, caption] if image is not None else [caption])
    rows = [cells[start : start + KEY_FRAMES_PER_ROW] for start in range(0, len(cells), KEY_FRAMES_PER_ROW)]
    rows[-1] += [[""]] * (KEY_FRAMES_PER_ROW - len(rows[-1]))
    table = Table(rows, colWidths=[KEY_FRAME_WIDTH_CM * cm + 6] * KEY_FRAMES_PER_ROW, hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    heading = Paragraph(
        _text(f"Frames that drove person {person.index + 1}'s verdict (they pushed the score up, highest first)"),
        styles["small_bold"],
    )
    return [heading, table]


def _timeline_section(analysis: Analysis, scoring: VideoScoring | None, styles: dict[str, Any]) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, KeepTogether, Paragraph, Spacer, Table, TableStyle

    people = [face for face in analysis.faces if isinstance(face, TrackResult) and face.frame_scores]
    if not people:
        return []
    chart = [
        Spacer(1, 10),
        Paragraph("Timeline", styles["heading"]),
        Image(io.BytesIO(_timeline_png(analysis, people, scoring)), width=17.4 * cm, height=6.2 * cm),
        Paragraph(
            "Dots: each analysed frame's score (red: frames that drove the verdict). Solid line: the person's own "
            "score. Dashed: the frame threshold. Shaded: the uncertain band of a person's score.",
            styles["muted"],
        ),
    ]
    story: list[Any] = [KeepTogether(chart)]
    if analysis.frames:
        rows = [["Frame", "Time", "Scores (person: frame score)"]]
        for frame in analysis.frames:
            scores = ", ".join(
                f"person {face.track + 1}: {percent_text(face.fake_probability)}" for face in frame.faces
            )
            time = "-" if frame.time_s is None else f"{frame.time_s:.2f} s"
            rows.append([str(frame.index), time, Paragraph(_text(scores or "no face"), styles["small"])])
        table = Table(rows, colWidths=[2 * cm, 2.2 * cm, None], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), _font(), 8),
                    ("FONT", (0, 0), (-1, 0), _font(bold=True), 8),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.5, _colour(MUTED_COLOUR)),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story += [Spacer(1, 6), Paragraph(f"Analysed frames ({len(analysis.frames)})", styles["small_bold"]), table]
    return story


def _limits_section(scan: Scan, analysis: Analysis, styles: dict[str, Any]) -> list[Any]:
    from reportlab.platypus import Paragraph, Spacer

    story: list[Any] = [
        Spacer(1, 10),
        Paragraph("Limits: what this report cannot tell you", styles["heading"]),
        Paragraph(
            _text(
                "The models judge faces only: a picture or video without a detectable face gets no score. Inputs "
                f"outside what they can judge are called uncertain whatever the score: a face under {SMALL_FACE_PX} "
                f"px across, more than {SCOPE_MAX_FACES} faces, or a picture under {SCOPE_MIN_SIDE_PX} px on its "
                "short side. A score is a calibrated estimate on data like the models' training data, not proof; "
                "kinds of manipulation they were not trained on can go unnoticed."
            ),
            styles["body"],
        ),
    ]
    versions = [scan.image_model_version]
    if analysis.is_video:
        versions.append(scan.video_model_version)
    for version in versions:
        if version is None:
            continue
        weaknesses = model_card_weaknesses(model_version=version)
        text = f"<b>{_text(version.label)}</b> ({version.kind} model): " + _text(
            weaknesses or "no model card describes this version; see its metrics in the admin."
        )
        story.append(Paragraph(text, styles["body"]))
    return story


def _notes_section(analysis: Analysis, styles: dict[str, Any]) -> list[Any]:
    from reportlab.platypus import Paragraph, Spacer

    story: list[Any] = []
    notes = [note for note in analysis.notes if note not in analysis.out_of_scope]
    if notes:
        story += [Spacer(1, 8), Paragraph("Notes", styles["heading"])]
        story += [Paragraph(_text(_sentence(note)), styles["body"]) for note in notes]
    hints = (analysis.metadata or {}).get("hints") or []
    if hints:
        story += [Spacer(1, 8), Paragraph("Metadata hints (not part of the verdict)", styles["heading"])]
        story += [Paragraph(_text(hint), styles["body"]) for hint in hints]
    return story


# --- pictures ------------------------------------------------------------------------------------------


def _picture(scan: Scan, analysis: Analysis) -> Any | None:
    """The photo with its face boxes numbered from 1, or a video's first key frame (else its first crop)."""
    from reportlab.lib.units import cm
    from reportlab.platypus import Image

    pixels = _photo_with_boxes(scan, analysis) if not analysis.is_video else _video_still(scan, analysis)
    if pixels is None:
        return None
    buffer = io.BytesIO()
    pixels.save(buffer, format="JPEG", quality=88)
    width_cm = 8.0
    height_cm = min(9.0, width_cm * pixels.height / pixels.width)
    return Image(
        io.BytesIO(buffer.getvalue()), width=height_cm * pixels.width / pixels.height * cm, height=height_cm * cm
    )


def _photo_with_boxes(scan: Scan, analysis: Analysis) -> PILImage.Image | None:
    try:
        with scan.file.open("rb") as handle, PILImage.open(handle) as opened:
            opened.seek(0)
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError):
        return None
    scale = min(1.0, PICTURE_MAX_PX / max(picture.size))
    if scale < 1.0:
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
    draw = ImageDraw.Draw(picture)
    line = max(2, round(max(picture.size) / 250))
    for face in analysis.faces:
        x, y, width, height = (value * scale for value in face.box)
        colour = VERDICT_COLOURS.get(face.verdict, NEUTRAL_COLOUR)
        draw.rectangle((x, y, x + width, y + height), outline=colour, width=line)
        label = f"{face.index + 1}: {percent_text(face.fake_probability)}"
        left, top, right, bottom = draw.textbbox((x, y), label)
        top_edge = max(0, y - (bottom - top) - 4)
        draw.rectangle((x, top_edge, x + (right - left) + 6, top_edge + (bottom - top) + 4), fill=colour)
        draw.text((x + 3, top_edge + 1), label, fill="white")
    return picture


def _video_still(scan: Scan, analysis: Analysis) -> PILImage.Image | None:
    names = [frame.image for face in analysis.faces for frame in getattr(face, "key_frames", ())]
    names += [face.crop for face in analysis.faces if face.crop]
    for name in names:
        if (image := _evidence_pil(scan, name)) is not None:
            return image
    return None


def _evidence_pil(scan: Scan, name: str | None) -> PILImage.Image | None:
    if not name:
        return None
    try:
        with PILImage.open(io.BytesIO(evidence_read(scan=scan, name=name))) as image:
            return image.convert("RGB")
    except (EvidenceNotFound, UnidentifiedImageError, OSError):
        return None


def _evidence_image(scan: Scan, name: str | None, *, width_cm: float) -> Any | None:
    from reportlab.lib.units import cm
    from reportlab.platypus import Image

    pixels = _evidence_pil(scan, name)
    if pixels is None:
        return None
    buffer = io.BytesIO()
    pixels.save(buffer, format="JPEG", quality=90)
    return Image(
        io.BytesIO(buffer.getvalue()), width=width_cm * cm, height=width_cm * cm * pixels.height / pixels.width
    )


def _timeline_png(analysis: Analysis, people: list[TrackResult], scoring: VideoScoring | None) -> bytes:
    """The timeline as the page draws it: frame scores, each person's level line, the frame threshold, the band."""
    from matplotlib.figure import Figure

    fps = analysis.media.fps if analysis.media.fps and analysis.media.fps > 0 else None
    figure = Figure(figsize=(8.7, 3.1), dpi=150)
    axes = figure.add_axes((0.08, 0.17, 0.9, 0.78))
    decision = analysis.decision
    if decision is not None:
        axes.axhspan(decision.uncertain_low, decision.uncertain_high, color="#fef3c7")
    if scoring is not None:
        axes.axhline(scoring.frame_threshold, color="#b91c1c", linestyle="--", linewidth=1, label="frame threshold")
    for person, colour in zip(people, _palette(), strict=False):
        times = [frame / fps if fps else frame for frame in person.frame_indices]
        number = person.index + 1
        axes.plot(
            times,
            person.frame_scores,
            marker="o",
            markersize=3,
            linewidth=1,
            color=colour,
            label=f"person {number}: frames",
        )
        axes.axhline(
            person.fake_probability,
            color=colour,
            linewidth=2,
            label=f"person {number}: score {percent_text(person.fake_probability)}",
        )
        key = {frame.index for frame in person.key_frames}
        points = [
            (time, score)
            for time, frame, score in zip(times, person.frame_indices, person.frame_scores, strict=False)
            if frame in key
        ]
        if points:
            axes.scatter(*zip(*points, strict=True), s=36, color="#b91c1c", zorder=3)
    if fps and analysis.media.duration_s:
        axes.set_xlim(0, analysis.media.duration_s)
    axes.set_ylim(0, 1)
    axes.set_xlabel("time (s)" if fps else "frame", fontsize=8)
    axes.set_ylabel("fake probability", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=6.5, loc="upper right", ncols=2)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _palette() -> Iterable[str]:
    while True:
        yield from ("#4f46e5", "#0e7490", "#9333ea", "#c2410c")


# --- text ----------------------------------------------------------------------------------------------


@cache
def _font(*, bold: bool = False) -> str:
    """A Unicode TrueType font (DejaVu, shipped inside matplotlib), so any file name prints; Helvetica without it."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    try:
        import matplotlib

        name = "DejaVuSans-Bold" if bold else "DejaVuSans"
        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{name}.ttf"
        pdfmetrics.registerFont(TTFont(name, str(path)))
    except (ImportError, OSError):
        return "Helvetica-Bold" if bold else "Helvetica"
    return name


def _colour(hex_colour: str) -> Any:
    from reportlab.lib.colors import HexColor

    return HexColor(hex_colour)


def _styles() -> dict[str, Any]:
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics

    regular, bold = _font(), _font(bold=True)
    if bold != "Helvetica-Bold":
        pdfmetrics.registerFontFamily(regular, normal=regular, bold=bold, italic=regular, boldItalic=bold)
    base = ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=13, spaceAfter=3)
    return {
        "title": ParagraphStyle("title", parent=base, fontName=bold, fontSize=17, leading=21),
        # A file name or a SHA-256 may be one long word: these styles may break it anywhere.
        "filename": ParagraphStyle(
            "filename", parent=base, fontSize=10, textColor=_colour(MUTED_COLOUR), wordWrap="CJK"
        ),
        "headline": ParagraphStyle("headline", parent=base, fontName=bold, fontSize=15, leading=19, spaceAfter=4),
        "subtitle": ParagraphStyle(
            "subtitle", parent=base, fontName=bold, textColor=_colour(VERDICT_COLOURS["uncertain"])
        ),
        "lead": ParagraphStyle("lead", parent=base, fontSize=11.5, leading=15),
        "heading": ParagraphStyle("heading", parent=base, fontName=bold, fontSize=12, leading=15, spaceBefore=4),
        "body": base,
        "muted": ParagraphStyle("muted", parent=base, fontSize=8.5, leading=11.5, textColor=_colour(MUTED_COLOUR)),
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10.5, spaceAfter=0, wordWrap="CJK"),
        "small_bold": ParagraphStyle("small_bold", parent=base, fontName=bold, fontSize=8, leading=10.5, spaceAfter=2),
    }


def _text(value: Any) -> str:
    """Plain text made safe for a ReportLab paragraph (which reads a little markup)."""
    return escape(str(value))


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _moment(moment: Any) -> str:
    return "-" if moment is None else f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def _label(model_version: Any) -> str | None:
    return model_version.label if model_version is not None else None


def report_filename(*, scan: Scan) -> str:
    """The report's download name: the original file's name and the date of the analysis ("clip.mp4" of
    2026-11-30 -> "clip-report-2026-11-30.pdf"); header-safe, see `export_response`."""
    stem = Path(scan.original_filename.replace("\\", "/")).stem.strip() or "scan"
    moment = timezone.localtime(scan.finished_at or scan.created_at)
    return f"{stem[:120]}-report-{moment:%Y-%m-%d}.pdf"
