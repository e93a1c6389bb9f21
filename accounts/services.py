"""Writes on accounts: the API token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from rest_framework.authtoken.models import Token

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


@transaction.atomic
def token_regenerate(*, user: AbstractBaseUser) -> Token:
    """Replace the user's API token with a new one; the old token stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)
