"""Account forms: sign-up on top of Django's own user creation form."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """Username + password (validated by AUTH_PASSWORD_VALIDATORS), with an optional e-mail address."""

    email = forms.EmailField(
        required=False,
        help_text="Optional. Only used if an administrator needs to reach you.",
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")
