"""Every team, case and team-scan route as the team's owner, analyst, viewer, a non-member and anonymous.

A non-member always gets 404 (never 403: a team or case they are not in does not exist for them), anonymous
401 on the API and the login page on pages, and a member whose role does not allow an action 403 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from newsroom.models import Case, Membership, ScanReview, ShareLink, Team
from newsroom.tests.conftest import SECRET_CASE, Desk
from scans.models import Scan
from scans.tests.uploads import gradient_png, upload

pytestmark = pytest.mark.django_db

ROLES = ("owner", "analyst", "viewer", "non_member", "anonymous")


@dataclass(frozen=True)
class Call:
    """One API request; `url` and `data` are made from the desk; `expected` is the status per role."""

    name: str
    method: str
    url: Callable[[Desk], str]
    expected: tuple[int, int, int, int, int]
    data: Callable[[Desk], dict[str, Any]] | None = None
    multipart: bool = False


def _team(desk: Desk) -> str:
    return reverse("newsroom_api:team-detail", args=[desk.team.pk])


def _members(desk: Desk) -> str:
    return reverse("newsroom_api:team-members", args=[desk.team.pk])


def _member(username: str) -> Callable[[Desk], str]:
    return lambda desk: reverse("newsroom_api:team-member-detail", args=[desk.team.pk, username])


def _case(desk: Desk) -> str:
    return reverse("newsroom_api:case-detail", args=[desk.case.pk])


def _scan(desk: Desk) -> str:
    return reverse("api:scan-detail", args=[desk.scan.pk])


API_CALLS = [
    #                                                                        owner analyst viewer non-member anon
    Call("team-get", "get", _team, (200, 200, 200, 404, 401)),
    Call("team-rename", "patch", _team, (200, 403, 403, 404, 401), lambda desk: {"name": "Desk B"}),
    Call("team-delete", "delete", _team, (204, 403, 403, 404, 401)),
    Call(
        "team-audit",
        "get",
        lambda desk: reverse("newsroom_api:team-audit", args=[desk.team.pk]),
        (200, 403, 403, 404, 401),
    ),
    Call("members-list", "get", _members, (200, 200, 200, 404, 401)),
    Call(
        "members-add", "post", _members, (201, 403, 403, 404, 401), lambda desk: {"username": "frank", "role": "viewer"}
    ),
    Call("member-get", "get", _member("carol"), (200, 200, 200, 404, 401)),
    Call("member-role", "patch", _member("erin"), (200, 403, 403, 404, 401), lambda desk: {"role": "analyst"}),
    Call("member-remove", "delete", _member("erin"), (204, 403, 403, 404, 401)),
    Call(
        "case-create",
        "post",
        lambda desk: reverse("newsroom_api:case-list"),
        (201, 201, 403, 404, 401),
        lambda desk: {"team": str(desk.team.pk), "title": "Flood photo"},
    ),
    Call("case-get", "get", _case, (200, 200, 200, 404, 401)),
    Call("case-close", "patch", _case, (200, 200, 403, 404, 401), lambda desk: {"status": "closed"}),
    Call("case-delete", "delete", _case, (204, 403, 403, 404, 401)),
    Call(
        "case-scans",
        "get",
        lambda desk: reverse("api:scan-list") + f"?case={desk.case.pk}",
        (200, 200, 200, 404, 401),
    ),
    Call(
        "case-filter-on-cases",
        "get",
        lambda desk: reverse("newsroom_api:case-list") + f"?team={desk.team.pk}",
        (200, 200, 200, 404, 401),
    ),
    Call("team-scan-get", "get", _scan, (200, 200, 200, 404, 401)),
    Call(
        "team-scan-json",
        "get",
        lambda desk: reverse("api:scan-export-json", args=[desk.scan.pk]),
        (200, 200, 200, 404, 401),
    ),
    # carol, the analyst, uploaded the scan: only she moves or deletes it.
    Call("team-scan-move", "patch", _scan, (403, 200, 403, 404, 401), lambda desk: {"case": None}),
    Call("team-scan-delete", "delete", _scan, (403, 204, 403, 404, 401)),
    Call(
        "reviews-list",
        "get",
        lambda desk: reverse("newsroom_api:scan-reviews", args=[desk.scan.pk]),
        (200, 200, 200, 404, 401),
    ),
    Call(
        "review-add",
        "post",
        lambda desk: reverse("newsroom_api:scan-reviews", args=[desk.scan.pk]),
        (201, 201, 403, 404, 401),
        lambda desk: {"label": "confirmed_fake", "note": "checked"},
    ),
    Call(
        "shares-list",
        "get",
        lambda desk: reverse("newsroom_api:scan-shares", args=[desk.scan.pk]),
        (200, 200, 403, 404, 401),
    ),
    Call(
        "share-create",
        "post",
        lambda desk: reverse("newsroom_api:scan-shares", args=[desk.scan.pk]),
        (201, 201, 403, 404, 401),
        lambda desk: {"expires_in_days": 7},
    ),
    Call(
        "share-revoke",
        "delete",
        lambda desk: reverse("newsroom_api:scan-share-detail", args=[desk.scan.pk, desk.share.pk]),
        (204, 204, 403, 404, 401),
    ),
    Call(
        "upload-into-case",
        "post",
        lambda desk: reverse("api:scan-list"),
        (202, 202, 403, 404, 401),
        lambda desk: {"file": upload(gradient_png(), "chart.png"), "case": str(desk.case.pk)},
        multipart=True,
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", API_CALLS, ids=[call.name for call in API_CALLS])
def test_every_team_route_answers_each_role_as_its_role_allows(call, role, desk, api_client_for, tiny_models):
    client = api_client_for(desk.user(role))
    data = call.data(desk) if call.data else None
    kwargs = {"format": "multipart" if call.multipart else "json"} if data is not None else {}

    response = getattr(client, call.method)(call.url(desk), data, **kwargs)

    expected = dict(zip(ROLES, call.expected, strict=True))[role]
    assert response.status_code == expected, f"{call.method.upper()} {call.url(desk)} as {role}: {response.content!r}"
    if expected == 404:
        assert SECRET_CASE.encode() not in response.content
        assert str(desk.scan.pk).encode() not in response.content
    if expected == 403:
        assert response.json()["detail"]


def test_refused_actions_change_nothing(desk, api_client_for):
    viewer = api_client_for(desk.user("viewer"))
    outsider = api_client_for(desk.user("non_member"))

    viewer.patch(_case(desk), {"status": "closed"}, format="json")
    viewer.post(_members(desk), {"username": "bob", "role": "owner"}, format="json")
    outsider.delete(_team(desk))
    outsider.patch(_scan(desk), {"case": None}, format="json")

    desk.case.refresh_from_db()
    desk.scan.refresh_from_db()
    assert desk.case.status == Case.Status.OPEN
    assert not Membership.objects.filter(team=desk.team, user=desk.user("non_member")).exists()
    assert Team.objects.filter(pk=desk.team.pk).exists()
    assert desk.scan.case_id == desk.case.pk


# --- Pages ---------------------------------------------------------------------------------------------


def _page_client(user: object | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("team", (200, 200, 200, 404)),
        ("case", (200, 200, 200, 404)),
        ("scan", (200, 200, 200, 404)),
    ],
)
@pytest.mark.parametrize("role", ROLES)
def test_every_team_page_answers_each_role(page, expected, role, desk):
    url = {
        "team": reverse("newsroom:team", args=[desk.team.pk]),
        "case": reverse("newsroom:case", args=[desk.case.pk]),
        "scan": reverse("scans:detail", args=[desk.scan.pk]),
    }[page]

    response = _page_client(desk.user(role)).get(url)

    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    else:
        assert response.status_code == dict(zip(ROLES, expected, strict=False))[role]
        body = response.content.decode()
        if response.status_code == 200:
            assert SECRET_CASE in body
        else:
            assert SECRET_CASE not in body


@pytest.mark.parametrize(
    ("role", "added"), [("owner", True), ("analyst", False), ("viewer", False), ("non_member", False)]
)
def test_only_an_owner_adds_members_on_the_team_page(role, added, desk):
    url = reverse("newsroom:team", args=[desk.team.pk])

    response = _page_client(desk.user(role)).post(url, {"action": "add_member", "username": "frank", "role": "viewer"})

    assert response.status_code == (404 if role == "non_member" else 302)
    assert Membership.objects.filter(team=desk.team, user__username="frank").exists() is added


@pytest.mark.parametrize(("role", "opened"), [("owner", True), ("analyst", True), ("viewer", False)])
def test_owners_and_analysts_open_cases_on_the_team_page(role, opened, desk):
    client = _page_client(desk.user(role))

    response = client.post(reverse("newsroom:team", args=[desk.team.pk]), {"action": "new_case", "title": "Dam burst"})

    assert response.status_code == 302
    assert Case.objects.filter(team=desk.team, title="Dam burst").exists() is opened
    if not opened:
        page = client.get(response["Location"]).content.decode()
        assert "Viewers cannot open cases" in page


@pytest.mark.parametrize(("role", "closed"), [("owner", True), ("analyst", True), ("viewer", False)])
def test_case_page_edits_follow_the_role(role, closed, desk):
    url = reverse("newsroom:case", args=[desk.case.pk])

    _page_client(desk.user(role)).post(url, {"action": "update", "title": "Renamed", "note": "", "status": "closed"})

    desk.case.refresh_from_db()
    assert (desk.case.status == Case.Status.CLOSED) is closed


@pytest.mark.parametrize(("role", "moved"), [("owner", False), ("analyst", True), ("viewer", False)])
def test_only_the_uploader_moves_a_team_scan_on_its_page(role, moved, desk):
    client = _page_client(desk.user(role))

    response = client.post(reverse("scans:move", args=[desk.scan.pk]), {"case": ""})

    desk.scan.refresh_from_db()
    assert response.status_code == 302
    assert (desk.scan.case_id is None) is moved


def test_non_member_cannot_move_or_delete_a_team_scan_on_its_page(desk):
    client = _page_client(desk.user("non_member"))

    assert client.post(reverse("scans:move", args=[desk.scan.pk]), {"case": ""}).status_code == 404
    assert client.post(reverse("scans:delete", args=[desk.scan.pk])).status_code == 404
    assert Scan.objects.filter(pk=desk.scan.pk, case=desk.case).exists()


@dataclass(frozen=True)
class PageAction:
    """One POST (or GET) of a newsroom page, what each role gets, and whether it took effect for that role."""

    name: str
    method: str
    url: Callable[[Desk], str]
    data: dict[str, str]
    took_effect: Callable[[Desk], bool]
    # owner, analyst, viewer, non-member: status; anonymous always goes to the login page.
    expected: tuple[int, int, int, int]
    effect_for: tuple[str, ...]


PAGE_ACTIONS = [
    PageAction(
        "review",
        "post",
        lambda desk: reverse("newsroom:scan-review", args=[desk.scan.pk]),
        {"label": "disputed", "note": "n"},
        lambda desk: ScanReview.objects.filter(scan=desk.scan).exists(),
        (302, 302, 302, 404),
        ("owner", "analyst"),
    ),
    PageAction(
        "share",
        "post",
        lambda desk: reverse("newsroom:scan-shares", args=[desk.scan.pk]),
        {"action": "create", "expires_in_days": "7"},
        lambda desk: ShareLink.objects.filter(scan=desk.scan).count() > 1,
        # 201: the page that shows the new link's URL, once (newsroom.views.scan_shares).
        (201, 201, 302, 404),
        ("owner", "analyst"),
    ),
    PageAction(
        "revoke-share",
        "post",
        lambda desk: reverse("newsroom:scan-shares", args=[desk.scan.pk]),
        {"action": "revoke", "link": "SHARE"},
        lambda desk: ShareLink.objects.get(pk=desk.share.pk).revoked_at is not None,
        (302, 302, 302, 404),
        ("owner", "analyst"),
    ),
    PageAction(
        "delete-case",
        "post",
        lambda desk: reverse("newsroom:case", args=[desk.case.pk]),
        {"action": "delete_case"},
        lambda desk: not Case.objects.filter(pk=desk.case.pk).exists(),
        (302, 302, 302, 404),
        ("owner",),
    ),
    PageAction(
        "delete-team",
        "post",
        lambda desk: reverse("newsroom:team", args=[desk.team.pk]),
        {"action": "delete_team"},
        lambda desk: not Team.objects.filter(pk=desk.team.pk).exists(),
        (302, 302, 302, 404),
        ("owner",),
    ),
    PageAction(
        "change-role",
        "post",
        lambda desk: reverse("newsroom:team", args=[desk.team.pk]),
        {"action": "change_role", "username": "erin", "role": "analyst"},
        lambda desk: Membership.objects.get(team=desk.team, user__username="erin").role == "analyst",
        (302, 302, 302, 404),
        ("owner",),
    ),
    PageAction(
        "audit-log",
        "get",
        lambda desk: reverse("newsroom:team-audit", args=[desk.team.pk]),
        {},
        lambda desk: False,
        (200, 403, 403, 404),
        (),
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", PAGE_ACTIONS, ids=[action.name for action in PAGE_ACTIONS])
def test_every_newsroom_page_action_follows_the_role(action, role, desk):
    data = {key: str(desk.share.pk) if value == "SHARE" else value for key, value in action.data.items()}

    response = getattr(_page_client(desk.user(role)), action.method)(action.url(desk), data)

    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    else:
        assert response.status_code == dict(zip(ROLES, action.expected, strict=False))[role]
        if response.status_code == 404:
            assert SECRET_CASE not in response.content.decode()
    assert action.took_effect(desk) is (role in action.effect_for), f"{action.name} as {role}"
