"""A scan's reviewer labels (`newsroom.ScanReview`, read through `scan.reviews`) in the one shape that the pages,
the API, the exports and the webhook payload show: the current label and its history, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scans.wording import REVIEW_LABEL_TEXT, review_sentence

if TYPE_CHECKING:
    from newsroom.models import ScanReview
    from scans.models import Scan


def scan_reviews(*, scan: Scan) -> list[ScanReview]:
    """Every label of the scan, newest first (the first is the current one); uses a prefetch when there is one."""
    return list(scan.reviews.all())


def scan_review_current(*, scan: Scan) -> ScanReview | None:
    """The scan's current label: the latest one recorded, or None when nobody has reviewed it."""
    reviews = scan_reviews(scan=scan)
    return reviews[0] if reviews else None


def review_data(review: ScanReview | None) -> dict[str, Any] | None:
    """One label as JSON: label, its words, the note, who and when, the label it replaced, and the sentence."""
    if review is None:
        return None
    return {
        "label": review.label,
        "label_text": REVIEW_LABEL_TEXT.get(review.label, review.label),
        "note": review.note,
        "reviewer": review.reviewer_name,
        "reviewed_at": review.created_at.isoformat(),
        "previous_label": review.previous_label or None,
        "previous_label_text": REVIEW_LABEL_TEXT.get(review.previous_label) if review.previous_label else None,
        "text": review_sentence(label=review.label, reviewer_name=review.reviewer_name, reviewed_at=review.created_at),
    }


def scan_review_data(*, scan: Scan) -> dict[str, Any]:
    """`{"current": ..., "history": [...]}` of the scan (history newest first, the current label included)."""
    reviews = scan_reviews(scan=scan)
    return {
        "current": review_data(reviews[0]) if reviews else None,
        "history": [review_data(review) for review in reviews],
    }
