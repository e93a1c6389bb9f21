"""Share links keep the SHA-256 digest of their token, not the token: whoever reads the database or a backup can no
longer open every shared scan.

Existing links go on working: their digest is computed from the stored token before that column is dropped.
Going back cannot recover a token from its digest, so it gives every link a new one: the old URLs stop working.
"""

import hashlib
import secrets

from django.db import migrations, models

# Frozen copies of newsroom.models' rules: a migration must not change when the model's code does.
PREFIX_LENGTH = 8


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def digests_from_tokens(apps, schema_editor):
    ShareLink = apps.get_model("newsroom", "ShareLink")
    links = list(ShareLink.objects.only("pk", "token"))
    for link in links:
        link.token_digest = _digest(link.token)
        link.token_prefix = link.token[:PREFIX_LENGTH]
    ShareLink.objects.bulk_update(links, ["token_digest", "token_prefix"], batch_size=500)


def new_tokens_for_digests(apps, schema_editor):
    ShareLink = apps.get_model("newsroom", "ShareLink")
    links = list(ShareLink.objects.only("pk"))
    for link in links:
        link.token = secrets.token_urlsafe(32)
        link.token_digest = _digest(link.token)
        link.token_prefix = link.token[:PREFIX_LENGTH]
    ShareLink.objects.bulk_update(links, ["token", "token_digest", "token_prefix"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("newsroom", "0004_share_links"),
    ]

    operations = [
        migrations.AddField(
            model_name="sharelink",
            name="token_digest",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="sharelink",
            name="token_prefix",
            field=models.CharField(default="", editable=False, max_length=8),
            preserve_default=False,
        ),
        # Nullable for the way back, where the column returns empty before new tokens fill it.
        migrations.AlterField(
            model_name="sharelink",
            name="token",
            field=models.CharField(editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.RunPython(digests_from_tokens, new_tokens_for_digests, elidable=False),
        migrations.RemoveField(
            model_name="sharelink",
            name="token",
        ),
        migrations.AlterField(
            model_name="sharelink",
            name="token_digest",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
    ]
