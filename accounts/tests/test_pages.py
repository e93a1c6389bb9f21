"""Account pages: sign up, log in, log out, password change, and the API token page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-much-longer-passphrase-42"


def _logged_in_user_id(client) -> str | None:
    return client.session.get("_auth_user_id")


def test_landing_is_public_and_invites_to_sign_up(client):
    response = client.get(reverse("landing"))
    assert response.status_code == 200
    assert reverse("accounts:signup") in response.content.decode()
    assert reverse("scans:dashboard") not in response.content.decode()


def test_landing_links_signed_in_user_to_dashboard(client, alice):
    client.force_login(alice)
    response = client.get(reverse("landing"))
    assert response.status_code == 200
    assert f'href="{reverse("scans:dashboard")}"' in response.content.decode()


def test_signup_creates_the_user_logs_in_and_redirects_to_dashboard(client):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "carol", "email": "carol@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("scans:dashboard")
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password(NEW_PASSWORD)
    assert _logged_in_user_id(client) == str(carol.pk)
    assert client.get(response["Location"]).status_code == 200


def test_signup_with_mismatched_passwords_shows_the_error_and_creates_nobody(client):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "carol", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert "didn’t match" in response.content.decode()
    assert not get_user_model().objects.filter(username="carol").exists()
    assert _logged_in_user_id(client) is None


def test_signup_refuses_a_taken_username(client, alice):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "alice", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_signup_page_sends_a_signed_in_user_to_the_dashboard(client, alice):
    client.force_login(alice)
    response = client.get(reverse("accounts:signup"))
    assert response.status_code == 302
    assert response["Location"] == reverse("scans:dashboard")


def test_login_with_the_right_password_redirects_to_dashboard(client, alice):
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "correct-horse-battery-1"})
    assert response.status_code == 302
    assert response["Location"] == reverse("scans:dashboard")
    assert _logged_in_user_id(client) == str(alice.pk)


def test_login_follows_next_to_the_page_asked_for(client, alice):
    token_url = reverse("accounts:api_token")
    response = client.post(
        reverse("accounts:login"), {"username": "alice", "password": "correct-horse-battery-1", "next": token_url}
    )
    assert response.status_code == 302
    assert response["Location"] == token_url


def test_login_with_a_wrong_password_shows_an_error(client, alice):
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "wrong-password"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert _logged_in_user_id(client) is None


def test_logout_by_get_is_refused(client, alice):
    client.force_login(alice)
    response = client.get(reverse("accounts:logout"))
    assert response.status_code == 405
    assert _logged_in_user_id(client) == str(alice.pk)


def test_logout_by_post_signs_out_and_goes_to_landing(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("landing")
    assert _logged_in_user_id(client) is None
    assert client.get(reverse("scans:dashboard")).status_code == 302


def test_nav_offers_logout_as_a_post_form(client, alice):
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard")).content.decode()
    assert f'<form method="post" action="{reverse("accounts:logout")}"' in page


def test_password_change_sets_the_new_password_and_keeps_the_session(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "correct-horse-battery-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_change_done")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert client.get(response["Location"]).status_code == 200
    assert client.get(reverse("scans:dashboard")).status_code == 200


def test_password_change_with_a_wrong_old_password_changes_nothing(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("correct-horse-battery-1")


def test_a_password_change_replaces_the_api_token_so_the_old_one_stops_working(client, alice, api_client_for):
    old_key = Token.objects.create(user=alice).key
    scans_url = reverse("api:scan-list")
    assert api_client_for(alice).get(scans_url).status_code == 200
    client.force_login(alice)

    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "correct-horse-battery-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    new_key = Token.objects.get(user=alice).key
    assert new_key != old_key
    old_client = APIClient()
    old_client.credentials(HTTP_AUTHORIZATION=f"Token {old_key}")
    assert old_client.get(scans_url).status_code == 401
    assert api_client_for(alice).get(scans_url).status_code == 200
    page = response.content.decode()
    assert "Your API token was replaced" in page
    assert "the old token no longer works" in page
    assert new_key not in page


def test_a_refused_password_change_keeps_the_api_token(client, alice):
    key = Token.objects.create(user=alice).key
    client.force_login(alice)

    client.post(
        reverse("accounts:password_change"),
        {"old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert Token.objects.get(user=alice).key == key


def test_the_password_change_page_says_the_api_token_will_be_replaced(client, alice):
    client.force_login(alice)

    page = client.get(reverse("accounts:password_change")).content.decode()

    assert "replaces your" in page and "API token" in page and "stop working" in page


@pytest.mark.parametrize("route", ["accounts:password_change", "accounts:password_change_done", "accounts:api_token"])
def test_account_pages_send_anonymous_visitors_to_login(client, route):
    url = reverse(route)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


def test_token_page_creates_and_shows_the_users_token(client, alice):
    client.force_login(alice)
    response = client.get(reverse("accounts:api_token"))
    assert response.status_code == 200
    token = Token.objects.get(user=alice)
    assert token.key in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert client.get(reverse("accounts:api_token")).status_code == 200
    assert Token.objects.get(user=alice).key == token.key


def test_token_page_regenerates_the_token_on_post(client, alice):
    client.force_login(alice)
    old_key = Token.objects.create(user=alice).key
    response = client.post(reverse("accounts:api_token"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:api_token")
    new_key = Token.objects.get(user=alice).key
    assert new_key != old_key
    page = client.get(response["Location"]).content.decode()
    assert new_key in page
    assert old_key not in page
    assert "A new API token was created" in page


def test_token_page_never_shows_another_users_token(client, alice, bob):
    bob_key = Token.objects.create(user=bob).key
    client.force_login(alice)
    assert bob_key not in client.get(reverse("accounts:api_token")).content.decode()


def test_the_login_page_links_to_password_reset(client):
    page = client.get(reverse("accounts:login")).content.decode()

    assert f'href="{reverse("accounts:password_reset")}">Forgot your password?</a>' in page


def test_a_password_reset_mails_a_one_time_link_that_sets_a_new_password(client, alice, mailoutbox):
    Token.objects.create(user=alice)
    old_key = Token.objects.get(user=alice).key

    response = client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})

    assert response.status_code == 302 and response["Location"] == reverse("accounts:password_reset_done")
    [message] = mailoutbox
    assert message.to == ["alice@example.com"] and "Unmask" in message.subject
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/\S+/)", message.body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    set_password = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert set_password["Location"] == reverse("accounts:password_reset_complete")
    assert client.login(username="alice", password=NEW_PASSWORD)
    assert Token.objects.get(user=alice).key != old_key
    client.logout()
    assert "This link no longer works" in client.get(link, follow=True).content.decode()


def test_a_password_reset_for_an_unknown_address_says_the_same_and_sends_nothing(client, alice, mailoutbox):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"}, follow=True)

    assert "If an account uses that address" in response.content.decode()
    assert mailoutbox == []
