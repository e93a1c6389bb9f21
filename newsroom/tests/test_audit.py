"""The audit log: every upload, move, deletion, label and member change is recorded, with who and when; a team's
owners read its log (API and page), staff read everything in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from newsroom.models import AuditEvent
from newsroom.tests.conftest import Desk
from scans.models import Scan
from scans.tests.uploads import gradient_png, make_scan_row, upload

pytestmark = pytest.mark.django_db


def _audit(desk: Desk, client) -> list[dict]:
    response = client.get(reverse("newsroom_api:team-audit", args=[desk.team.pk]))
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_uploads_moves_labels_and_deletions_of_team_scans_are_in_the_owners_log(
    desk: Desk, api_client_for, tiny_models
):
    analyst = api_client_for(desk.user("analyst"))
    uploaded = analyst.post(
        reverse("api:scan-list"),
        {"file": upload(gradient_png(), "dam.png"), "case": str(desk.case.pk)},
        format="multipart",
    ).json()
    analyst.post(
        reverse("newsroom_api:scan-reviews", args=[desk.scan.pk]), {"label": "disputed", "note": "?"}, format="json"
    )
    analyst.patch(reverse("api:scan-detail", args=[desk.scan.pk]), {"case": None}, format="json")
    analyst.delete(reverse("api:scan-detail", args=[uploaded["id"]]))

    events = _audit(desk, api_client_for(desk.user("owner")))

    assert [(event["action"], event["actor"], event["scan_name"]) for event in events] == [
        ("deleted", "carol", "dam.png"),
        ("moved", "carol", "protest-clip.jpg"),
        ("labelled", "carol", "protest-clip.jpg"),
        ("uploaded", "carol", "dam.png"),
    ]
    assert events[0]["scan"] == uploaded["id"] and not Scan.objects.filter(pk=uploaded["id"]).exists()
    assert events[1]["detail"]["from_case_title"] == desk.case.title and events[1]["detail"]["to_case"] is None
    assert events[2]["detail"] == {"label": "disputed", "previous_label": None, "note": "?"}
    assert events[3]["detail"]["case_title"] == desk.case.title


def test_member_changes_are_in_the_log(desk: Desk, api_client_for):
    owner = api_client_for(desk.user("owner"))
    members = reverse("newsroom_api:team-members", args=[desk.team.pk])
    owner.post(members, {"username": "frank", "role": "viewer"}, format="json")
    owner.patch(f"{members}frank/", {"role": "analyst"}, format="json")
    owner.delete(f"{members}frank/")

    events = _audit(desk, owner)

    assert [(event["action"], event["detail"]) for event in events] == [
        ("member_removed", {"member": "frank", "role": "analyst"}),
        ("member_role_changed", {"member": "frank", "role": "analyst", "previous_role": "viewer"}),
        ("member_added", {"member": "frank", "role": "viewer"}),
    ]
    assert (
        owner.get(reverse("newsroom_api:team-audit", args=[desk.team.pk]), {"action": "member_added"}).json()["count"]
        == 1
    )


def test_a_personal_scan_is_in_no_teams_log_but_is_recorded(desk: Desk, api_client_for):
    personal = make_scan_row(desk.user("owner"), original_filename="alice-own.jpg")

    api_client_for(desk.user("owner")).delete(reverse("api:scan-detail", args=[personal.pk]))

    event = AuditEvent.objects.get(scan_reference=personal.pk)
    assert (event.action, event.actor_name, event.team_id) == ("deleted", "alice", None)
    assert all(entry["scan"] != str(personal.pk) for entry in _audit(desk, api_client_for(desk.user("owner"))))


def test_the_audit_page_is_for_owners(desk: Desk):
    AuditEvent.objects.create(action="labelled", actor_name="carol", team=desk.team, scan_name="protest-clip.jpg")
    pages = {}
    for role in ("owner", "analyst", "viewer", "non_member"):
        client = APIClient()
        client.force_login(desk.user(role))
        pages[role] = client.get(reverse("newsroom:team-audit", args=[desk.team.pk]))

    assert pages["owner"].status_code == 200
    assert "protest-clip.jpg" in pages["owner"].content.decode() and "Labelled" in pages["owner"].content.decode()
    assert pages["analyst"].status_code == pages["viewer"].status_code == 403
    assert "Only an owner of this team can read its audit log." in pages["viewer"].content.decode()
    assert pages["non_member"].status_code == 404


def test_staff_read_every_event_in_the_admin_and_cannot_change_it(desk: Desk, django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "correct-horse-battery-7")
    event = AuditEvent.objects.create(action="deleted", actor_name="alice", scan_name="gone-photo.jpg")
    client = APIClient()
    client.force_login(staff)

    listing = client.get(reverse("admin:newsroom_auditevent_changelist"))
    change = client.post(reverse("admin:newsroom_auditevent_change", args=[event.pk]), {"action": "uploaded"})

    assert listing.status_code == 200 and "gone-photo.jpg" in listing.content.decode()
    assert change.status_code == 403
    assert (
        reverse("admin:newsroom_auditevent_add")
        and client.get(reverse("admin:newsroom_auditevent_add")).status_code == 403
    )
    event.refresh_from_db()
    assert event.action == "deleted"
