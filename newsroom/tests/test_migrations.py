"""The migrations of this issue (teams, cases, reviews, share links, audit log, scans by URL) leave what was stored
untouched: users and their scans, every field, in nobody's case, uploaded (no source URL)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from scans.models import Scan

# The last scans migration before scans could be filed into cases.
BEFORE_CASES = [("scans", "0005_webhooks_move_out"), ("newsroom", None)]


@pytest.mark.django_db(transaction=True)
def test_existing_users_and_scans_are_untouched_and_stay_private():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_CASES)
    old_apps = executor.loader.project_state(BEFORE_CASES[:1]).apps
    user = old_apps.get_model("auth", "User").objects.create(username="before-teams", email="b@example.com")
    old_scan = old_apps.get_model("scans", "Scan").objects.create(
        owner=user,
        kind="image",
        file="uploads/old.jpg",
        original_filename="old.jpg",
        size_bytes=10,
        sha256="cd" * 32,
        status="done",
        verdict="fake",
        fake_probability=0.8,
        result={"verdict": "fake", "fake_probability": 0.8},
    )
    fields = ["owner_id", "kind", "file", "original_filename", "sha256", "status", "verdict", "fake_probability"]
    before = {name: getattr(old_scan, name) for name in fields}

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    scan = Scan.objects.get(pk=old_scan.pk)
    assert {name: getattr(scan, name) for name in fields} == {**before, "file": "uploads/old.jpg"}
    assert scan.result == {"verdict": "fake", "fake_probability": 0.8}
    assert scan.case_id is None
    assert scan.source_url == "" and scan.media_url == ""
    assert scan.owner.username == "before-teams" and scan.owner.email == "b@example.com"
