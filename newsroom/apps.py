"""The newsroom app: teams, their members and roles, and the case folders scans are filed into."""

from __future__ import annotations

from django.apps import AppConfig


class NewsroomConfig(AppConfig):
    """Teams, memberships and cases; a scan is filed into a case by `Scan.case`."""

    name = "newsroom"
