"""Dashboard page for webhooks (namespace `webhooks`), under /scans/webhooks/ beside the other dashboard pages."""

from __future__ import annotations

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [path("", views.webhooks, name="endpoints")]
