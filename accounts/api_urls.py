"""Token API routes under /api/v1/auth/ (namespace `auth_api`)."""

from __future__ import annotations

from django.urls import path

from accounts import apis

app_name = "auth_api"

urlpatterns = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="token"),
    path("auth/token/regenerate/", apis.TokenRegenerateApi.as_view(), name="token-regenerate"),
]
