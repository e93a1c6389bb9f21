"""Webhook endpoints and deliveries became the `webhooks` app's models. Only Django's record of the models
moves; their tables (scans_webhookendpoint, scans_webhookdelivery) and every row in them stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("scans", "0004_batches"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="WebhookDelivery"),
                migrations.DeleteModel(name="WebhookEndpoint"),
            ],
            database_operations=[],
        ),
    ]
