"""scan_list_for_user and scan_get_for_user: own scans only, newest first, filters, and 404-shaped misses."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser

from scans.models import Scan
from scans.selectors import scan_get_for_user, scan_list_for_user
from scans.tests.uploads import make_scan_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_scans(alice) -> dict[str, Scan]:
    """Three of alice's scans of different ages, states and kinds."""
    return {
        "old_real_photo": make_scan_row(
            alice,
            original_filename="Beach Holiday.jpg",
            status=Scan.Status.DONE,
            verdict=Scan.Verdict.REAL,
            fake_probability=0.1,
            age=timedelta(days=2),
        ),
        "fake_video": make_scan_row(
            alice,
            kind=Scan.Kind.VIDEO,
            original_filename="interview.mp4",
            status=Scan.Status.DONE,
            verdict=Scan.Verdict.FAKE,
            fake_probability=0.9,
            age=timedelta(days=1),
        ),
        "queued_photo": make_scan_row(alice, original_filename="beach-party.png"),
    }


def test_it_lists_only_the_users_own_scans_newest_first(alice, bob, alice_scans):
    make_scan_row(bob, original_filename="bob.jpg")

    listed = list(scan_list_for_user(user=alice))

    assert listed == [alice_scans["queued_photo"], alice_scans["fake_video"], alice_scans["old_real_photo"]]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "queued"}, ["queued_photo"]),
        ({"verdict": "fake"}, ["fake_video"]),
        ({"kind": "image"}, ["queued_photo", "old_real_photo"]),
        ({"q": "BEACH"}, ["queued_photo", "old_real_photo"]),
        ({"q": "beach", "status": "done"}, ["old_real_photo"]),
        ({"status": "", "q": ""}, ["queued_photo", "fake_video", "old_real_photo"]),
        ({"owner": "someone-else"}, ["queued_photo", "fake_video", "old_real_photo"]),
    ],
    ids=["status", "verdict", "kind", "q-is-case-insensitive", "combined", "empty-values-ignored", "unknown-ignored"],
)
def test_it_filters_the_list(alice, alice_scans, filters, expected):
    listed = list(scan_list_for_user(user=alice, filters=filters))

    assert listed == [alice_scans[name] for name in expected]


def test_filters_never_reach_other_users_scans(alice, bob, alice_scans):
    assert not scan_list_for_user(user=bob, filters={"q": "beach"}).exists()


def test_an_anonymous_user_owns_no_scans(alice_scans):
    assert not scan_list_for_user(user=AnonymousUser()).exists()


def test_it_gets_one_of_the_users_own_scans_by_id_or_its_string(alice, alice_scans):
    scan = alice_scans["fake_video"]

    assert scan_get_for_user(user=alice, scan_id=scan.id) == scan
    assert scan_get_for_user(user=alice, scan_id=str(scan.id)) == scan


@pytest.mark.parametrize(
    "scan_id",
    ["not-a-uuid", "", "1; DROP TABLE scans_scan", str(uuid.uuid4())],
    ids=["word", "empty", "sql", "unknown"],
)
def test_a_malformed_or_unknown_id_does_not_exist(alice, scan_id):
    with pytest.raises(Scan.DoesNotExist):
        scan_get_for_user(user=alice, scan_id=scan_id)


def test_it_rejects_other_users_scan_as_does_not_exist(bob, alice_scans):
    with pytest.raises(Scan.DoesNotExist):
        scan_get_for_user(user=bob, scan_id=alice_scans["fake_video"].id)


def test_it_rejects_anonymous_as_does_not_exist(alice_scans):
    with pytest.raises(Scan.DoesNotExist):
        scan_get_for_user(user=AnonymousUser(), scan_id=alice_scans["fake_video"].id)
