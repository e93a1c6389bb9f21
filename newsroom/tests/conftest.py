"""A verification desk for the role tests: one team with an owner, an analyst and a viewer, a case, a scan filed in it.

alice owns the team, carol is its analyst, dave its viewer, erin a second viewer (a member to remove); bob and
frank are signed up but not in the team, and anonymous is nobody. carol's scan is filed in the case, with a share link.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from newsroom.models import Case, Membership, ShareLink, Team
from newsroom.services import case_create, team_create
from scans.models import Scan
from scans.tests.uploads import make_scan_row

SECRET_CASE = "desk-secret-case-51c"


@dataclass
class Desk:
    team: Team
    case: Case
    scan: Scan
    share: ShareLink
    users: dict[str, object]

    def user(self, role: str) -> object | None:
        """The user acting in `role`: owner, analyst, viewer, non_member or anonymous (None)."""
        return self.users.get(role)


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_user("carol", "carol@example.com", "correct-horse-battery-3")


@pytest.fixture
def dave(django_user_model):
    return django_user_model.objects.create_user("dave", "dave@example.com", "correct-horse-battery-4")


@pytest.fixture
def erin(django_user_model):
    return django_user_model.objects.create_user("erin", "erin@example.com", "correct-horse-battery-5")


@pytest.fixture
def desk(alice, bob, carol, dave, erin, django_user_model) -> Desk:
    # frank has an account and is in no team: the person owners add.
    django_user_model.objects.create_user("frank", "frank@example.com", "correct-horse-battery-6")
    team = team_create(creator=alice, name="Verification desk")
    Membership.objects.create(team=team, user=carol, role=Membership.Role.ANALYST)
    Membership.objects.create(team=team, user=dave, role=Membership.Role.VIEWER)
    Membership.objects.create(team=team, user=erin, role=Membership.Role.VIEWER)
    case = case_create(team=team, creator=alice, title=SECRET_CASE, note="Who posted the clip first?")
    scan = make_scan_row(
        carol,
        original_filename="protest-clip.jpg",
        status=Scan.Status.DONE,
        verdict=Scan.Verdict.FAKE,
        fake_probability=0.91,
        result={"verdict": "fake", "fake_probability": 0.91, "faces": [], "media": {"width": 64, "height": 48}},
        case=case,
    )
    share = ShareLink.objects.create(scan=scan, created_by=carol, created_by_name="carol")
    return Desk(
        team=team,
        case=case,
        scan=scan,
        share=share,
        users={"owner": alice, "analyst": carol, "viewer": dave, "non_member": bob, "anonymous": None},
    )
