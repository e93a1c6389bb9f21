"""Site-wide pages that belong to no app: the public landing page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def landing(request: HttpRequest) -> HttpResponse:
    """Explain what Unmask does; signed-in users get a way straight to their dashboard."""
    return render(
        request,
        "landing.html",
        {
            "max_image_bytes": settings.UNMASK_MAX_IMAGE_BYTES,
            "max_video_bytes": settings.UNMASK_MAX_VIDEO_BYTES,
        },
    )
