"""The webhook models, taken over from the scans app with the tables it created (see scans 0005): state only,
so an existing database keeps its rows and a new one gets the tables from scans 0002."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import webhooks.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("scans", "0004_batches"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WebhookEndpoint",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("url", models.URLField(max_length=500)),
                        (
                            "secret",
                            models.CharField(default=webhooks.models.webhook_secret_new, editable=False, max_length=64),
                        ),
                        ("is_active", models.BooleanField(default=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "owner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="webhook_endpoints",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "scans_webhookendpoint",
                        "ordering": ["created_at"],
                        "constraints": [
                            models.UniqueConstraint(fields=("owner", "url"), name="unique_webhook_url_per_owner")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="WebhookDelivery",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("scan_reference", models.UUIDField()),
                        ("event", models.CharField(max_length=32)),
                        ("attempt", models.PositiveSmallIntegerField()),
                        ("succeeded", models.BooleanField(default=False)),
                        ("status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("error", models.TextField(blank=True)),
                        ("duration_ms", models.PositiveIntegerField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "endpoint",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="deliveries",
                                to="webhooks.webhookendpoint",
                            ),
                        ),
                        (
                            "scan",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="scans.scan",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "scans_webhookdelivery",
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_recent")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
