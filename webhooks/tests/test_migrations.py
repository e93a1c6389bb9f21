"""Webhooks became an app of their own: a database migrated before the move keeps every endpoint and delivery."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from webhooks.models import WebhookDelivery, WebhookEndpoint

# The last scans migration with the webhook models still in the scans app.
LAST_SCANS_MIGRATION_BEFORE_THE_MOVE = ("scans", "0004_batches")


@pytest.mark.django_db(transaction=True)
def test_endpoints_and_deliveries_stored_before_the_move_are_there_after_it():
    executor = MigrationExecutor(connection)
    executor.migrate([LAST_SCANS_MIGRATION_BEFORE_THE_MOVE, ("webhooks", None)])
    old_apps = executor.loader.project_state([LAST_SCANS_MIGRATION_BEFORE_THE_MOVE]).apps
    user = old_apps.get_model("auth", "User").objects.create(username="before-the-move")
    endpoint = old_apps.get_model("scans", "WebhookEndpoint").objects.create(
        owner=user, url="https://example.com/hook", secret="s" * 64
    )
    scan_reference = uuid.uuid4()
    old_apps.get_model("scans", "WebhookDelivery").objects.create(
        endpoint=endpoint, scan_reference=scan_reference, event="scan.finished", attempt=1, succeeded=True
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    moved = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (moved.owner_id, moved.url, moved.secret) == (user.pk, "https://example.com/hook", "s" * 64)
    delivery = WebhookDelivery.objects.get(endpoint=moved)
    assert (delivery.scan_reference, delivery.attempt, delivery.succeeded) == (scan_reference, 1, True)
