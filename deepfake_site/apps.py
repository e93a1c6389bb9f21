"""The project package as an app, so that its system checks (`deepfake_site.checks`) are registered."""

from __future__ import annotations

from django.apps import AppConfig


class SiteConfig(AppConfig):
    """Registers the project's own deployment checks; it has no models."""

    name = "deepfake_site"
    verbose_name = "Unmask site"

    def ready(self) -> None:
        from deepfake_site import checks  # noqa: F401 (registers the checks)
