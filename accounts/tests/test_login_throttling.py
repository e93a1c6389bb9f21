"""Brute-force protection: the (username, address) pair is locked out after a few failures with 429 and
Retry-After on the log-in page and the token API; an attacker elsewhere cannot lock the user out, a noisy client
does not lock out the others behind its address, spraying many usernames locks the address, and every lockout is
logged. Counted in the real Redis."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

LOGIN_URL = reverse("accounts:login")
TOKEN_URL = reverse("auth_api:token")
ALICE_PASSWORD = "correct-horse-battery-1"
BOB_PASSWORD = "correct-horse-battery-2"
ATTACKER = "203.0.113.9"
ELSEWHERE = "198.51.100.7"


def _log_in(client, username: str, password: str, address: str):
    return client.post(LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def _token(username: str, password: str, address: str):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_login_page_locks_the_pair_out_after_the_limit_with_429_retry_after_and_a_log_line(
    client, alice, settings, caplog
):
    assert settings.UNMASK_LOGIN_FAILURE_LIMIT == 5
    for _ in range(4):
        assert _log_in(client, "alice", "wrong", ATTACKER).status_code == 200

    locked = _log_in(client, "alice", "wrong", ATTACKER)
    right_password_meanwhile = _log_in(client, "alice", ALICE_PASSWORD, ATTACKER)

    assert locked.status_code == 429
    assert 890 <= int(locked["Retry-After"]) <= 900
    assert "Too many failed log-in attempts for this account" in locked.content.decode()
    assert "Try again in 15 minutes" in locked.content.decode()
    # While locked out no password is checked, so the right one is refused the same way.
    assert right_password_meanwhile.status_code == 429
    assert "_auth_user_id" not in client.session
    (record,) = [record for record in caplog.records if "locked out" in record.getMessage()]
    assert record.levelname == "WARNING" and "'alice'" in record.getMessage() and ATTACKER in record.getMessage()


def test_an_attacker_cannot_lock_the_user_out_from_another_address(client, alice):
    for _ in range(5):
        _log_in(client, "alice", "wrong", ATTACKER)

    response = _log_in(client, "alice", ALICE_PASSWORD, ELSEWHERE)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_one_noisy_client_does_not_lock_out_the_others_behind_the_same_address(client, alice, bob):
    shared_address = "192.0.2.1"
    for _ in range(12):
        _log_in(client, "alice", "wrong", shared_address)

    response = _log_in(client, "bob", BOB_PASSWORD, shared_address)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(bob.pk)


def test_spraying_many_usernames_from_one_address_locks_the_whole_address(client, bob, settings, caplog):
    settings.UNMASK_LOGIN_IP_USERNAME_LIMIT = 3
    assert _log_in(client, "carol", "Winter2026!", ATTACKER).status_code == 200
    assert _log_in(client, "dave", "Winter2026!", ATTACKER).status_code == 200

    third = _log_in(client, "erin", "Winter2026!", ATTACKER)
    bob_from_there = _log_in(client, "bob", BOB_PASSWORD, ATTACKER)
    bob_elsewhere = _log_in(client, "bob", BOB_PASSWORD, ELSEWHERE)

    assert third.status_code == bob_from_there.status_code == 429
    assert "for several accounts" in bob_from_there.content.decode()
    assert int(bob_from_there["Retry-After"]) > 0
    assert bob_elsewhere.status_code == 302
    assert any("every username from 203.0.113.9" in record.getMessage() for record in caplog.records)


def test_the_token_api_locks_the_pair_out_with_429_and_retry_after(alice):
    for _ in range(4):
        assert _token("alice", "wrong", ATTACKER).status_code == 400

    locked = _token("alice", "wrong", ATTACKER)
    right_password_meanwhile = _token("alice", ALICE_PASSWORD, ATTACKER)
    elsewhere = _token("alice", ALICE_PASSWORD, ELSEWHERE)

    assert locked.status_code == right_password_meanwhile.status_code == 429
    assert 890 <= int(locked["Retry-After"]) <= 900
    assert "Too many failed log-in attempts for this account" in locked.json()["detail"]
    assert "token" not in right_password_meanwhile.json()
    assert elsewhere.status_code == 200 and elsewhere.json()["token"]


def test_the_page_and_the_api_count_the_same_failures(client, alice):
    for _ in range(3):
        _token("alice", "wrong", ATTACKER)
    _log_in(client, "alice", "wrong", ATTACKER)

    assert _log_in(client, "alice", "wrong", ATTACKER).status_code == 429
    assert _token("alice", ALICE_PASSWORD, ATTACKER).status_code == 429


def test_usernames_are_counted_whatever_their_case(client, alice):
    for username in ("alice", "Alice", "ALICE", "alice ", "aLiCe"):
        _log_in(client, username, "wrong", ATTACKER)

    assert _log_in(client, "alice", ALICE_PASSWORD, ATTACKER).status_code == 429


def test_a_successful_log_in_clears_the_pairs_failures(client, alice):
    for _ in range(4):
        _log_in(client, "alice", "wrong", ATTACKER)
    assert _log_in(client, "alice", ALICE_PASSWORD, ATTACKER).status_code == 302
    client.logout()

    for _ in range(4):
        assert _log_in(client, "alice", "wrong", ATTACKER).status_code == 200
    assert _log_in(client, "alice", ALICE_PASSWORD, ATTACKER).status_code == 302


def test_the_lockout_lifts_after_its_time(client, alice, settings):
    settings.UNMASK_LOGIN_LOCKOUT_SECONDS = 1
    for _ in range(5):
        _log_in(client, "alice", "wrong", ATTACKER)
    assert _log_in(client, "alice", ALICE_PASSWORD, ATTACKER).status_code == 429

    time.sleep(2.1)

    assert _log_in(client, "alice", ALICE_PASSWORD, ATTACKER).status_code == 302


def test_a_forged_x_forwarded_for_is_ignored_unless_a_proxy_is_configured(client, alice, settings):
    for number in range(5):
        client.post(
            LOGIN_URL,
            {"username": "alice", "password": "wrong"},
            REMOTE_ADDR=ATTACKER,
            HTTP_X_FORWARDED_FOR=f"10.0.0.{number}",
        )
    assert _log_in(client, "alice", ALICE_PASSWORD, ATTACKER).status_code == 429

    # Behind one proxy (nginx in compose), the address it appended is the client's; what came before is not.
    settings.UNMASK_PROXY_COUNT = 1
    for _ in range(5):
        client.post(
            LOGIN_URL,
            {"username": "alice", "password": "wrong"},
            REMOTE_ADDR="172.18.0.5",
            HTTP_X_FORWARDED_FOR=f"{ELSEWHERE}, {ATTACKER}",
        )
    behind_the_proxy = client.post(
        LOGIN_URL,
        {"username": "alice", "password": ALICE_PASSWORD},
        REMOTE_ADDR="172.18.0.5",
        HTTP_X_FORWARDED_FOR="203.0.113.77",
    )
    assert behind_the_proxy.status_code == 302


def test_the_admin_log_in_is_limited_too(client, django_user_model):
    django_user_model.objects.create_user("operator", "ops@example.com", "correct-horse-3", is_staff=True)
    admin_login = reverse("admin:login")
    for _ in range(5):
        client.post(admin_login, {"username": "operator", "password": "wrong"}, REMOTE_ADDR=ATTACKER)

    client.post(admin_login, {"username": "operator", "password": "correct-horse-3"}, REMOTE_ADDR=ATTACKER)

    assert "_auth_user_id" not in client.session
