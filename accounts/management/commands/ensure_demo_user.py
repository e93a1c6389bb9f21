"""Create the demo account `make run` advertises, once, and print how to log in every time."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction


class Command(BaseCommand):
    help = "Create a demo user if none of that name exists, and print its login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument(
            "--password", default=None, help="password for a newly created demo user (default: a random one)"
        )

    @transaction.atomic
    def handle(self, *args, username: str, password: str | None, **options) -> None:
        # The generated password is kept in var/ (owner-readable only) so every `make run` can repeat it.
        credentials_file = Path(settings.VAR_DIR) / "demo-login.txt"
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            remembered = credentials_file.read_text().strip() if credentials_file.exists() else ""
            if remembered.startswith(f"{username}:"):
                self.stdout.write(f"Demo login: username '{username}', password '{remembered.split(':', 1)[1]}'")
            else:
                self.stdout.write(
                    f"Demo account '{username}' exists; reset its password with "
                    f"`python manage.py changepassword {username}` if you lost it."
                )
            return
        password = password or secrets.token_urlsafe(9)
        user_model.objects.create_user(username=username, password=password, email=f"{username}@example.com")
        credentials_file.parent.mkdir(parents=True, exist_ok=True)
        credentials_file.write_text(f"{username}:{password}\n")
        credentials_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Demo login: username '{username}', password '{password}'"))
