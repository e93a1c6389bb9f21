"""Teams, members and cases through the API and the pages: what each action does, and every refusal's reason."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from newsroom.models import Case, Membership, Team
from newsroom.tests.conftest import Desk
from scans.models import Scan
from scans.tests.uploads import gradient_png, make_scan_row, upload

pytestmark = pytest.mark.django_db

TEAMS_URL = reverse("newsroom_api:team-list")
CASES_URL = reverse("newsroom_api:case-list")
SCANS_URL = reverse("api:scan-list")


def _members_url(team: Team) -> str:
    return reverse("newsroom_api:team-members", args=[team.pk])


def _member_url(team: Team, username: str) -> str:
    return reverse("newsroom_api:team-member-detail", args=[team.pk, username])


# --- Teams and members -------------------------------------------------------------------------------


def test_creating_a_team_answers_201_with_its_id_and_makes_the_creator_its_owner(alice, api_client_for):
    response = api_client_for(alice).post(TEAMS_URL, {"name": "  Verification desk "}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    team = Team.objects.get(pk=body["id"])
    assert team.name == "Verification desk"
    assert body["role"] == "owner"
    assert body["members"] == [{"username": "alice", "role": "owner", "added_at": body["members"][0]["added_at"]}]
    assert response["Location"] == body["url"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [({}, "This field is required."), ({"name": "   "}, "This field may not be blank."), ({"name": "x" * 101}, "100")],
)
def test_a_team_without_a_usable_name_is_refused_with_the_reason(payload, message, alice, api_client_for):
    response = api_client_for(alice).post(TEAMS_URL, payload, format="json")

    assert response.status_code == 400
    assert message in str(response.json())
    assert not Team.objects.exists()


def test_the_team_list_shows_only_the_callers_teams_with_their_role(desk, api_client_for):
    as_viewer = api_client_for(desk.user("viewer")).get(TEAMS_URL).json()
    as_outsider = api_client_for(desk.user("non_member")).get(TEAMS_URL).json()

    assert [(team["name"], team["role"]) for team in as_viewer] == [("Verification desk", "viewer")]
    assert {member["username"]: member["role"] for member in as_viewer[0]["members"]} == {
        "alice": "owner",
        "carol": "analyst",
        "dave": "viewer",
        "erin": "viewer",
    }
    assert as_outsider == []


def test_a_person_can_be_in_several_teams_with_different_roles(desk, api_client_for):
    other_team = api_client_for(desk.user("non_member")).post(TEAMS_URL, {"name": "Photo desk"}, format="json").json()
    api_client_for(desk.user("non_member")).post(
        _members_url(Team.objects.get(pk=other_team["id"])), {"username": "dave", "role": "analyst"}, format="json"
    )

    teams = api_client_for(desk.user("viewer")).get(TEAMS_URL).json()

    assert {(team["name"], team["role"]) for team in teams} == {
        ("Verification desk", "viewer"),
        ("Photo desk", "analyst"),
    }


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"username": "nobody", "role": "viewer"}, 400, "There is no user called “nobody”."),
        (
            {"username": "carol", "role": "viewer"},
            400,
            "carol is already a member of this team; change their role instead.",
        ),
        ({"username": "frank", "role": "admin"}, 400, "is not a valid choice"),
        ({"role": "viewer"}, 400, "This field is required."),
    ],
)
def test_adding_a_member_explains_each_refusal(payload, status, message, desk, api_client_for):
    response = api_client_for(desk.user("owner")).post(_members_url(desk.team), payload, format="json")

    assert response.status_code == status
    assert message in str(response.json())


def test_an_owner_adds_a_member_who_then_sees_the_team_and_its_cases(desk, api_client_for):
    frank = api_client_for(desk.team.memberships.model.user.field.related_model.objects.get(username="frank"))
    assert frank.get(reverse("newsroom_api:case-detail", args=[desk.case.pk])).status_code == 404

    added = api_client_for(desk.user("owner")).post(
        _members_url(desk.team), {"username": "frank", "role": "viewer"}, format="json"
    )

    assert added.status_code == 201
    assert added.json()["role"] == "viewer"
    assert frank.get(reverse("newsroom_api:case-detail", args=[desk.case.pk])).json()["role"] == "viewer"
    assert [scan["id"] for scan in frank.get(SCANS_URL, {"case": desk.case.pk}).json()["results"]] == [
        str(desk.scan.pk)
    ]


def test_the_last_owner_can_neither_step_down_nor_leave(desk, api_client_for):
    owner = api_client_for(desk.user("owner"))

    demoted = owner.patch(_member_url(desk.team, "alice"), {"role": "viewer"}, format="json")
    left = owner.delete(_member_url(desk.team, "alice"))

    assert demoted.status_code == 400
    assert demoted.json()["detail"] == "A team needs at least one owner: make someone else an owner first."
    assert left.status_code == 400
    assert "at least one owner" in left.json()["detail"]
    assert Membership.objects.get(team=desk.team, user=desk.user("owner")).role == "owner"


def test_with_a_second_owner_the_first_can_step_down(desk, api_client_for):
    owner = api_client_for(desk.user("owner"))
    owner.patch(_member_url(desk.team, "carol"), {"role": "owner"}, format="json")

    response = owner.patch(_member_url(desk.team, "alice"), {"role": "analyst"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"username": "alice", "role": "analyst", "added_at": response.json()["added_at"]}


def test_a_viewer_may_leave_the_team_but_not_remove_others(desk, api_client_for):
    viewer = api_client_for(desk.user("viewer"))

    refused = viewer.delete(_member_url(desk.team, "erin"))
    left = viewer.delete(_member_url(desk.team, "dave"))

    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only an owner of this team can remove members."
    assert left.status_code == 204
    assert viewer.get(reverse("newsroom_api:team-detail", args=[desk.team.pk])).status_code == 404


def test_a_member_route_for_someone_not_in_the_team_is_404(desk, api_client_for):
    response = api_client_for(desk.user("owner")).get(_member_url(desk.team, "bob"))

    assert response.status_code == 404
    assert response.json()["detail"] == "No such member of this team."


def test_deleting_a_team_leaves_its_scans_with_their_uploaders(desk, api_client_for):
    response = api_client_for(desk.user("owner")).delete(reverse("newsroom_api:team-detail", args=[desk.team.pk]))

    assert response.status_code == 204
    assert not Case.objects.filter(pk=desk.case.pk).exists()
    scan = Scan.objects.get(pk=desk.scan.pk)
    assert scan.case_id is None
    assert api_client_for(desk.user("analyst")).get(reverse("api:scan-detail", args=[scan.pk])).status_code == 200
    assert api_client_for(desk.user("viewer")).get(reverse("api:scan-detail", args=[scan.pk])).status_code == 404


@pytest.mark.parametrize("team_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_a_malformed_or_unknown_team_id_is_404(team_id, alice, api_client_for):
    response = api_client_for(alice).get(f"/api/v1/teams/{team_id}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such team."}


# --- Cases -------------------------------------------------------------------------------------------


def test_an_analyst_opens_a_case_and_the_list_filters_by_team_and_status(desk, api_client_for):
    analyst = api_client_for(desk.user("analyst"))

    created = analyst.post(
        CASES_URL, {"team": str(desk.team.pk), "title": "Flood photo", "note": "From X"}, format="json"
    )
    analyst.patch(reverse("newsroom_api:case-detail", args=[desk.case.pk]), {"status": "closed"}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["title"], body["note"], body["status"], body["created_by"], body["scan_count"]) == (
        "Flood photo",
        "From X",
        "open",
        "carol",
        0,
    )
    open_cases = analyst.get(CASES_URL, {"team": str(desk.team.pk), "status": "open"}).json()
    closed_cases = analyst.get(CASES_URL, {"status": "closed"}).json()
    assert [case["title"] for case in open_cases] == ["Flood photo"]
    assert [(case["id"], case["scan_count"]) for case in closed_cases] == [(str(desk.case.pk), 1)]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"title": "No team"}, "This field is required."),
        ({"team": "00000000-0000-0000-0000-000000000000", "title": "x"}, "No such team."),
        ({"team": "TEAM", "title": ""}, "This field may not be blank."),
        ({"team": "TEAM", "title": "x", "status": "archived"}, None),
    ],
)
def test_opening_a_case_explains_each_refusal(payload, message, desk, api_client_for):
    payload = {key: str(desk.team.pk) if value == "TEAM" else value for key, value in payload.items()}

    response = api_client_for(desk.user("owner")).post(CASES_URL, payload, format="json")

    if message is None:
        # Unknown fields are ignored: a new case is always open.
        assert response.status_code == 201
        assert response.json()["status"] == "open"
    else:
        assert response.status_code in {400, 404}
        assert message in str(response.json())


def test_a_case_update_with_a_bad_status_is_refused(desk, api_client_for):
    response = api_client_for(desk.user("analyst")).patch(
        reverse("newsroom_api:case-detail", args=[desk.case.pk]), {"status": "archived"}, format="json"
    )

    assert response.status_code == 400
    assert "is not a valid choice" in str(response.json())


# --- Scans in cases ----------------------------------------------------------------------------------


def test_a_scan_uploaded_into_a_case_is_filed_there_and_seen_by_the_team(desk, api_client_for, tiny_models):
    response = api_client_for(desk.user("owner")).post(
        SCANS_URL, {"file": upload(gradient_png(), "chart.png"), "case": str(desk.case.pk)}, format="multipart"
    )

    assert response.status_code == 202, response.content
    assert response.json()["case"] == str(desk.case.pk)
    assert response.json()["owner"] == "alice"
    viewer_list = api_client_for(desk.user("viewer")).get(SCANS_URL, {"case": desk.case.pk}).json()
    assert {scan["id"] for scan in viewer_list["results"]} == {response.json()["id"], str(desk.scan.pk)}


def test_an_upload_into_a_closed_case_is_refused_and_nothing_is_stored(desk, api_client_for, tiny_models):
    Case.objects.filter(pk=desk.case.pk).update(status=Case.Status.CLOSED)

    response = api_client_for(desk.user("analyst")).post(
        SCANS_URL, {"file": upload(gradient_png(), "chart.png"), "case": str(desk.case.pk)}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "This case is closed: reopen it before filing scans into it."}
    assert Scan.objects.count() == 1


def test_an_upload_with_a_malformed_case_says_what_case_must_be(desk, api_client_for, tiny_models):
    response = api_client_for(desk.user("analyst")).post(
        SCANS_URL, {"file": upload(gradient_png(), "chart.png"), "case": "nope"}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "`case` must be the id of a case of one of your teams."}


def test_a_viewer_is_told_why_they_cannot_upload_into_a_case(desk, api_client_for, tiny_models):
    response = api_client_for(desk.user("viewer")).post(
        SCANS_URL, {"file": upload(gradient_png(), "chart.png"), "case": str(desk.case.pk)}, format="multipart"
    )

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Viewers cannot file scans into this team's cases; an owner of the team can make you an analyst."
    )


def test_personal_scans_stay_private_and_the_default_list_is_still_ones_own(desk, api_client_for):
    personal = make_scan_row(desk.user("owner"), original_filename="alice-private.jpg")

    as_viewer = api_client_for(desk.user("viewer"))
    as_analyst_list = api_client_for(desk.user("analyst")).get(SCANS_URL).json()["results"]

    assert as_viewer.get(reverse("api:scan-detail", args=[personal.pk])).status_code == 404
    assert as_viewer.get(SCANS_URL).json()["results"] == []
    assert [scan["id"] for scan in as_analyst_list] == [str(desk.scan.pk)]


def test_the_owner_moves_a_personal_scan_into_a_case_and_back(desk, api_client_for):
    personal = make_scan_row(desk.user("analyst"), original_filename="carol-own.jpg")
    analyst = api_client_for(desk.user("analyst"))
    url = reverse("api:scan-detail", args=[personal.pk])

    filed = analyst.patch(url, {"case": str(desk.case.pk)}, format="json")
    seen_by_viewer = api_client_for(desk.user("viewer")).get(url).status_code
    back = analyst.patch(url, {"case": None}, format="json")

    assert filed.status_code == 200 and filed.json()["case"] == str(desk.case.pk)
    assert seen_by_viewer == 200
    assert back.status_code == 200 and back.json()["case"] is None
    assert api_client_for(desk.user("viewer")).get(url).status_code == 404


def test_moving_into_a_case_of_a_team_one_is_not_in_is_404(desk, api_client_for, django_user_model):
    outsider = desk.user("non_member")
    own = make_scan_row(outsider)

    response = api_client_for(outsider).patch(
        reverse("api:scan-detail", args=[own.pk]), {"case": str(desk.case.pk)}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "No such case."}
    own.refresh_from_db()
    assert own.case_id is None


def test_a_move_without_a_case_field_is_refused(desk, api_client_for):
    response = api_client_for(desk.user("analyst")).patch(
        reverse("api:scan-detail", args=[desk.scan.pk]), {}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"case": ["This field is required."]}


# --- Pages -------------------------------------------------------------------------------------------


def _logged_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_the_teams_page_creates_a_team_and_opens_it(alice):
    client = _logged_in(alice)

    response = client.post(reverse("newsroom:teams"), {"name": "Night desk"})

    team = Team.objects.get(name="Night desk")
    assert response.status_code == 302 and response["Location"] == reverse("newsroom:team", args=[team.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Night desk" in page and "You are owner of this team." in page
    assert "Add a member" in page


def test_the_teams_page_refuses_an_empty_name(alice):
    response = _logged_in(alice).post(reverse("newsroom:teams"), {"name": ""})

    assert response.status_code == 400
    assert "Give the team a name." in response.content.decode()


def test_a_viewer_sees_the_case_and_its_scans_without_the_edit_forms(desk: Desk):
    page = _logged_in(desk.user("viewer")).get(reverse("newsroom:case", args=[desk.case.pk])).content.decode()

    assert "protest-clip.jpg" in page and "carol" in page
    assert "Edit the case" not in page and "Upload into this case" not in page


def test_the_dashboard_offers_the_open_cases_one_may_file_into(desk: Desk):
    page = _logged_in(desk.user("analyst")).get(reverse("scans:dashboard"), {"file_into": desk.case.pk})
    viewer_page = _logged_in(desk.user("viewer")).get(reverse("scans:dashboard"))

    html = page.content.decode()
    assert "File into case" in html
    assert f'<option value="{desk.case.pk}" selected>Verification desk: {desk.case.title}</option>' in html
    assert "File into case" not in viewer_page.content.decode()


def test_the_dashboard_upload_files_the_scan_into_the_chosen_case(desk: Desk, tiny_models):
    client = _logged_in(desk.user("analyst"))

    response = client.post(
        reverse("scans:dashboard"), {"file": upload(gradient_png(), "chart.png"), "case": str(desk.case.pk)}
    )

    scan = Scan.objects.get(original_filename="chart.png")
    assert response.status_code == 302
    assert scan.case_id == desk.case.pk and scan.owner == desk.user("analyst")


def test_the_dashboard_upload_into_a_closed_case_shows_the_reason(desk: Desk, tiny_models):
    Case.objects.filter(pk=desk.case.pk).update(status=Case.Status.CLOSED)

    response = _logged_in(desk.user("analyst")).post(
        reverse("scans:dashboard"), {"file": upload(gradient_png(), "chart.png"), "case": str(desk.case.pk)}
    )

    assert response.status_code == 400
    assert "Choose one of your teams&#x27; open cases, or none." in response.content.decode()
    assert not Scan.objects.filter(original_filename="chart.png").exists()


def test_a_team_scan_page_says_who_uploaded_it_and_hides_the_owner_actions_from_others(desk: Desk):
    page = _logged_in(desk.user("viewer")).get(reverse("scans:detail", args=[desk.scan.pk])).content.decode()
    own_page = _logged_in(desk.user("analyst")).get(reverse("scans:detail", args=[desk.scan.pk])).content.decode()

    assert "carol" in page and "you are viewer" in page
    assert "Delete scan" not in page and "data-move-form" not in page
    assert "Delete scan" in own_page and "data-move-form" in own_page
