"""Delivery log rows written before the log stopped keeping receivers' answers: "HTTP 500: <the first 300
characters the receiver sent>" becomes "HTTP 500". Whatever a receiver answers is not shown to the user (an
internal service reached by a webhook would otherwise have its reply displayed)."""

from django.db import migrations
from django.db.models.functions import Left


def drop_answer_excerpts(apps, schema_editor):
    WebhookDelivery = apps.get_model("webhooks", "WebhookDelivery")
    # "HTTP " and a three-digit status code are the first 8 characters; the excerpt followed them after ": ".
    WebhookDelivery.objects.filter(error__regex=r"^HTTP [0-9]{3}: ").update(error=Left("error", 8))


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0002_endpoint_circuit_breaker"),
    ]

    operations = [
        migrations.RunPython(drop_answer_excerpts, migrations.RunPython.noop),
    ]
