"""Migrations of the webhooks app keep what was stored: the move out of scans, and the log without receivers' answers."""

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


@pytest.mark.django_db(transaction=True)
def test_answers_of_receivers_logged_before_are_dropped_from_the_log_and_the_status_kept():
    before = [("webhooks", "0002_endpoint_circuit_breaker")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    user = old_apps.get_model("auth", "User").objects.create(username="before-the-log-change")
    endpoint = old_apps.get_model("webhooks", "WebhookEndpoint").objects.create(
        owner=user, url="https://example.com/hook", secret="s" * 64
    )
    logged = {
        "HTTP 500: <html>internal admin page, token=abc</html>": "HTTP 500",
        "HTTP 404": "HTTP 404",
        "no answer: timed out": "no answer: timed out",
    }
    for attempt, error in enumerate(logged, start=1):
        old_apps.get_model("webhooks", "WebhookDelivery").objects.create(
            endpoint=endpoint, scan_reference=uuid.uuid4(), event="scan.finished", attempt=attempt, error=error
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    errors = list(
        WebhookDelivery.objects.filter(endpoint_id=endpoint.pk).order_by("attempt").values_list("error", flat=True)
    )
    assert errors == list(logged.values())
