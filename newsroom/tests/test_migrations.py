"""The migrations of this issue (teams, cases, reviews, share links, audit log, scans by URL) leave what was stored
untouched: users and their scans, every field, in nobody's case, uploaded (no source URL); and share links made
while tokens were stored in plain text keep working once only their digest is."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from newsroom.models import ShareLink
from newsroom.shares import ShareLinkGone, share_link_open
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


# The last newsroom migration that stored share tokens in plain text.
PLAIN_TOKENS = [("newsroom", "0004_share_links")]


def _share_columns() -> set[str]:
    with connection.cursor() as cursor:
        return {column.name for column in connection.introspection.get_table_description(cursor, "newsroom_sharelink")}


@pytest.mark.django_db(transaction=True)
def test_share_links_keep_working_with_only_their_digest_stored():
    executor = MigrationExecutor(connection)
    executor.migrate(PLAIN_TOKENS)
    old_apps = executor.loader.project_state(PLAIN_TOKENS).apps
    # Only newsroom went back: the other apps' tables are as today, so their rows are made with today's models.
    user = get_user_model().objects.create(username="sharer")
    scan = Scan.objects.create(
        owner=user, kind="image", file="uploads/s.jpg", original_filename="s.jpg", size_bytes=1, sha256="ef" * 32
    )
    old_links = old_apps.get_model("newsroom", "ShareLink").objects
    working = old_links.create(scan_id=scan.pk, token="t" * 43, created_by_name="sharer")
    revoked = old_links.create(scan_id=scan.pk, token="r" * 43, created_by_name="sharer", revoked_at=timezone.now())

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert "token" not in _share_columns() and {"token_digest", "token_prefix"} <= _share_columns()
    links = {link.pk: link for link in ShareLink.objects.all()}
    assert links[working.pk].token_digest == hashlib.sha256(b"t" * 43).hexdigest()
    assert links[working.pk].token_prefix == "tttttttt" and links[revoked.pk].token_prefix == "rrrrrrrr"
    assert share_link_open(token="t" * 43).pk == working.pk
    with pytest.raises(ShareLinkGone) as gone:
        share_link_open(token="r" * 43)
    assert gone.value.status_code == 410

    # Back again: a digest gives no token back, so each link gets a new, different one (its old URL stops working).
    executor = MigrationExecutor(connection)
    executor.migrate(PLAIN_TOKENS)
    tokens = dict(
        executor.loader.project_state(PLAIN_TOKENS)
        .apps.get_model("newsroom", "ShareLink")
        .objects.values_list("pk", "token")
    )
    assert set(tokens) == {working.pk, revoked.pk}
    assert len(set(tokens.values())) == 2 and not {"t" * 43, "r" * 43} & set(tokens.values())
    assert all(len(token) >= 43 for token in tokens.values())
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert ShareLink.objects.get(pk=working.pk).token_digest == hashlib.sha256(tokens[working.pk].encode()).hexdigest()
