"""Dashboard page for webhooks: add and remove endpoints, see their secrets and the delivery log."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webhooks.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER
from webhooks.models import WebhookEndpoint
from webhooks.selectors import (
    webhook_delivery_list_for_user,
    webhook_endpoint_get_for_user,
    webhook_endpoint_list_for_user,
)
from webhooks.services import (
    WebhookRejected,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_resume,
)

DELIVERY_LOG_LENGTH = 50


class WebhookAddForm(forms.Form):
    """The URL of a new endpoint; `webhook_endpoint_create` decides whether it is acceptable."""

    url = forms.CharField(
        label="Receiver URL",
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/unmask-hook", "autocomplete": "off"}),
    )


@login_required
@require_http_methods(["GET", "POST"])
def webhooks(request: HttpRequest) -> HttpResponse:
    """GET: the user's endpoints and recent deliveries. POST `add` (url), `remove` or `resume` (endpoint id)."""
    add_form = WebhookAddForm()
    status = 200
    if request.method == "POST":
        if "resume" in request.POST:
            try:
                endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=request.POST["resume"])
            except WebhookEndpoint.DoesNotExist:
                messages.error(request, "That webhook does not exist (any more).")
            else:
                webhook_endpoint_resume(endpoint=endpoint)
                messages.success(request, f"Resumed the webhook to {endpoint.url}: it gets the next finished scans.")
            return redirect("webhooks:endpoints")
        if "remove" in request.POST:
            try:
                endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=request.POST["remove"])
            except WebhookEndpoint.DoesNotExist:
                messages.error(request, "That webhook does not exist (any more).")
            else:
                webhook_endpoint_delete(endpoint=endpoint)
                messages.success(request, f"Removed the webhook to {endpoint.url}.")
            return redirect("webhooks:endpoints")
        add_form = WebhookAddForm(request.POST)
        if add_form.is_valid():
            try:
                endpoint = webhook_endpoint_create(owner=request.user, url=add_form.cleaned_data["url"])
            except WebhookRejected as exc:
                add_form.add_error("url", exc.message)
            else:
                messages.success(request, f"Added the webhook to {endpoint.url}.")
                return redirect("webhooks:endpoints")
        status = 400
    context = {
        "add_form": add_form,
        "endpoints": webhook_endpoint_list_for_user(user=request.user),
        "deliveries": webhook_delivery_list_for_user(user=request.user)[:DELIVERY_LOG_LENGTH],
        "signature_header": SIGNATURE_HEADER,
        "timestamp_header": TIMESTAMP_HEADER,
        "max_endpoints": settings.UNMASK_WEBHOOK_MAX_ENDPOINTS,
        "pause_after_failures": settings.UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES,
    }
    return render(request, "webhooks/webhooks.html", context, status=status)
