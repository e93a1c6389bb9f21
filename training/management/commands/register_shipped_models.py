"""`manage.py register_shipped_models`: register and activate the default models that ship in ml/weights/."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.shipped import SHIPPED_MANIFEST, register_shipped_models


class Command(BaseCommand):
    help = (
        "Register every model listed in ml/weights/manifest.json as a ModelVersion (idempotent: already "
        "registered versions are left as they are) and activate each kind's default one, unless a version of "
        "that kind that is not shipped (trained or uploaded here) is active and --keep-active is given."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--manifest", type=Path, default=SHIPPED_MANIFEST, help="manifest to read")
        parser.add_argument(
            "--keep-active",
            action="store_true",
            help="do not replace an active version that is not a shipped one (e.g. one trained locally)",
        )

    def handle(self, *args, **options) -> None:
        try:
            versions = register_shipped_models(manifest_path=options["manifest"], keep_active=options["keep_active"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for model_version in versions:
            state = "active" if model_version.is_active else "registered"
            self.stdout.write(f"{model_version.kind} model {model_version.label}: {state}")
