"""Security middleware: a Content-Security-Policy on every response, and oversized uploads refused unread.

Both are plain Django middleware listed in `settings.MIDDLEWARE` (see the "Security" section there).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.html import escape

from scans.intake import BatchRejected, batch_request_size_check, upload_request_size_check
from scans.uploads import UploadRejected

# The pages use only their own script and stylesheet; inline `style` attributes place face boxes and meters.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# django-rq's staff-only pages carry inline scripts of their own.
INLINE_SCRIPT_PATH_PREFIXES = ("/django-rq/",)
INLINE_SCRIPT_POLICY = CONTENT_SECURITY_POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")

# The views that accept uploads, by URL name, and the check of the declared body size each one needs.
UPLOAD_SIZE_CHECKS = {
    "api:scan-list": upload_request_size_check,
    "scans:dashboard": upload_request_size_check,
    "api:batch-list": batch_request_size_check,
    "scans:batch-new": batch_request_size_check,
}


class ContentSecurityPolicyMiddleware:
    """Adds `Content-Security-Policy` to every response that has not set its own (file views set a stricter one)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            inline_scripts = request.path.startswith(INLINE_SCRIPT_PATH_PREFIXES)
            response["Content-Security-Policy"] = INLINE_SCRIPT_POLICY if inline_scripts else CONTENT_SECURITY_POLICY
        return response


class UploadSizeLimitMiddleware:
    """Answers 413 to an upload whose declared size exceeds every limit, before anything reads its body.

    It must run before the CSRF middleware (and DRF's session authentication), which read the form body
    to find the CSRF token: otherwise Django would spool the whole oversized body to disk first.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        size_check = _upload_size_check_for(request.path_info) if request.method == "POST" else None
        if size_check is not None:
            try:
                size_check(content_length=request.META.get("CONTENT_LENGTH"))
            except (UploadRejected, BatchRejected) as rejection:
                return _rejection_response(request, rejection)
        return self.get_response(request)


def _upload_size_check_for(path: str) -> Callable[..., None] | None:
    try:
        return UPLOAD_SIZE_CHECKS.get(resolve(path).view_name)
    except Resolver404:
        return None


def _rejection_response(request: HttpRequest, rejection: UploadRejected | BatchRejected) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": rejection.message}, status=rejection.status_code)
    # The dashboard cannot re-render its form without reading the body; a short page says why and links back.
    page = (
        "<!doctype html><title>Upload too large</title><h1>Upload too large</h1>"
        f'<p>{escape(rejection.message)}</p><p><a href="{escape(request.path)}">Back to the dashboard</a></p>'
    )
    return HttpResponse(page, status=rejection.status_code, content_type="text/html; charset=utf-8")
