"""Writes on accounts: the API token, and what a password change does to it."""

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


@transaction.atomic
def token_rotate_after_password_change(*, user: AbstractBaseUser) -> bool:
    """After a password change the API token is replaced too, so a leaked token does not outlive the password
    (Django already ends the user's other sessions). Returns whether there was a token to replace."""
    if not Token.objects.filter(user=user).exists():
        return False
    token_regenerate(user=user)
    return True
