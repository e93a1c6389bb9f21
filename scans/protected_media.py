"""Responses for stored private files (uploads, crops, heatmaps, reports), for views that already checked ownership.

With `UNMASK_MEDIA_ACCEL_REDIRECT` set (e.g. "/protected-media/"), the view answers with an empty response
carrying `X-Accel-Redirect`, and the reverse proxy (nginx `internal` location mapped onto MEDIA_ROOT) sends
the bytes; empty, Django streams the file itself. Either way the headers below are set: no sniffing, private
caching, and a sandboxing policy so the file, opened directly, can never run as a page.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import Storage
from django.http import FileResponse, Http404, HttpResponse
from django.utils.encoding import escape_uri_path

MEDIA_CONTENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"


def private_file_response(
    *, storage: Storage, name: str, content_type: str, download_name: str, as_attachment: bool
) -> HttpResponse:
    """The stored file `name` of `storage` as a response; 404 when it is no longer there.

    `name` is a storage name written by the platform (never client input), so it cannot leave MEDIA_ROOT.
    """
    if not name or not storage.exists(name):
        raise Http404("The file is no longer stored.")
    accel_prefix = settings.UNMASK_MEDIA_ACCEL_REDIRECT
    if accel_prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = accel_prefix.rstrip("/") + "/" + quote(name.lstrip("/"))
        disposition = "attachment" if as_attachment else "inline"
        response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{escape_uri_path(download_name)}"
    else:
        try:
            handle = storage.open(name, "rb")
        except (FileNotFoundError, ValueError):
            raise Http404("The file is no longer stored.") from None
        response = FileResponse(handle, as_attachment=as_attachment, filename=download_name, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = MEDIA_CONTENT_SECURITY_POLICY
    return response
