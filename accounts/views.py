"""Account pages: sign up, log in/out, password change and reset, and the API token page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from accounts.forms import SignupForm
from accounts.services import token_regenerate, token_rotate_after_password_change
from accounts.throttling import login_lockout_of


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account, sign the new user in and send them to the dashboard."""
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # The user was just created, not authenticated: say which backend vouches for the session.
        login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        messages.success(request, f"Welcome, {user.get_username()}. Upload a photo or a video to check it.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


class LoginView(auth_views.LoginView):
    """Django's log-in page; a locked-out attempt (accounts.throttling) is answered 429 with Retry-After."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        lockout = login_lockout_of(self.request)
        if lockout is None:
            return super().form_invalid(form)
        response = self.render_to_response(
            self.get_context_data(form=self.get_form_class()(self.request), lockout_message=lockout.message),
            status=429,
        )
        response["Retry-After"] = str(lockout.retry_after)
        return response


login_view = LoginView.as_view()

# Django 5 only accepts POST here, so a link or a prefetch can never sign anyone out.
logout_view = auth_views.LogoutView.as_view()


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change (which keeps this session and ends the others), then a new API token."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("accounts:password_change_done")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        if token_rotate_after_password_change(user=form.user):
            messages.info(
                self.request, "Your API token was replaced: scripts that use the old one must get the new one."
            )
        return response


password_change = PasswordChangeView.as_view()

password_change_done = auth_views.PasswordChangeDoneView.as_view(
    template_name="registration/password_change_done.html",
)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_token(request: HttpRequest) -> HttpResponse:
    """Show the user's API token (created on first visit); POST replaces it with a new one."""
    if request.method == "POST":
        token_regenerate(user=request.user)
        messages.success(request, "A new API token was created. The old one no longer works.")
        return redirect("accounts:api_token")
    token, _created = Token.objects.get_or_create(user=request.user)
    return render(request, "accounts/api_token.html", {"token": token})


# Password reset by e-mail: Django's views and tokens (one-time, expiring after PASSWORD_RESET_TIMEOUT), the
# messages sent through EMAIL_BACKEND (the console unless SMTP is configured; see settings).
password_reset = auth_views.PasswordResetView.as_view(
    template_name="registration/password_reset_form.html",
    email_template_name="registration/password_reset_email.txt",
    subject_template_name="registration/password_reset_subject.txt",
    success_url=reverse_lazy("accounts:password_reset_done"),
)

password_reset_done = auth_views.PasswordResetDoneView.as_view(template_name="registration/password_reset_done.html")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's set-a-new-password page from the e-mailed link; the API token is replaced, as on a change."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        token_rotate_after_password_change(user=form.user)
        return response


password_reset_confirm = PasswordResetConfirmView.as_view()

password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="registration/password_reset_complete.html"
)
