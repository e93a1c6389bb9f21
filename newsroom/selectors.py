"""Reads on teams and cases: which teams a user is in, with what role, and the cases they can see.

Every read goes through the caller's membership: a team or case the caller is not a member of raises
`DoesNotExist` exactly like one that does not exist, so callers answer 404 and never reveal it.
This module imports nothing from `scans` (the scans app reads memberships through it).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.db.models import Case as SqlCase
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Value, When

from newsroom.models import AuditEvent, Case, Membership, Team

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

CASE_FILTERS = ("team", "status")


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _role_of(user: AbstractBaseUser, team_field: str) -> Subquery:
    return Subquery(Membership.objects.filter(team=OuterRef(team_field), user=user).values("role")[:1])


def team_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    """The teams the user is a member of, by name; each carries the user's `role` in it."""
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.annotate(role=_role_of(user, "pk")).filter(role__isnull=False).order_by("name", "created_at")


def team_get_for_user(*, user: AbstractBaseUser | AnonymousUser, team_id: Any) -> Team:
    """One of the user's teams, carrying the user's `role`; `Team.DoesNotExist` for any other or a malformed id."""
    team_uuid = _uuid_or_none(team_id)
    if team_uuid is None:
        raise Team.DoesNotExist(f"no team {team_id!r}")
    return team_list_for_user(user=user).get(pk=team_uuid)


def team_members(*, team: Team) -> QuerySet[Membership]:
    """The team's memberships with their users: owners first, then analysts, then viewers, each by username."""
    order = {Membership.Role.OWNER: 0, Membership.Role.ANALYST: 1, Membership.Role.VIEWER: 2}
    rank = SqlCase(
        *[When(role=role, then=Value(position)) for role, position in order.items()], output_field=IntegerField()
    )
    return team.memberships.select_related("user").annotate(rank=rank).order_by("rank", "user__username")


def team_member_get(*, team: Team, username: str) -> Membership:
    """The team's membership of `username`; `Membership.DoesNotExist` when that person is not in the team."""
    return team.memberships.select_related("user").get(user__username=username)


def case_list_for_user(*, user: AbstractBaseUser | AnonymousUser, filters: dict | None = None) -> QuerySet[Case]:
    """The cases of every team the user is in, newest first; each carries the user's `role` in its team.

    Filters: `team` (a team id; a team the user is not in gives nothing) and `status` (open or closed).
    """
    if not user.is_authenticated:
        return Case.objects.none()
    cases = Case.objects.annotate(role=_role_of(user, "team")).filter(role__isnull=False).select_related("team")
    filters = {name: value for name, value in (filters or {}).items() if name in CASE_FILTERS and value}
    if "team" in filters:
        team_uuid = _uuid_or_none(filters["team"])
        cases = cases.filter(team_id=team_uuid) if team_uuid else cases.none()
    if "status" in filters:
        cases = cases.filter(status=filters["status"])
    return cases.order_by("-created_at")


def case_get_for_user(*, user: AbstractBaseUser | AnonymousUser, case_id: Any) -> Case:
    """One case of one of the user's teams, carrying the user's `role`; `Case.DoesNotExist` for any other."""
    case_uuid = _uuid_or_none(case_id)
    if case_uuid is None:
        raise Case.DoesNotExist(f"no case {case_id!r}")
    return case_list_for_user(user=user).get(pk=case_uuid)


def case_choices_for_filing(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Case]:
    """The open cases the user may file a scan into (teams where they are an owner or an analyst)."""
    return (
        case_list_for_user(user=user)
        .filter(status=Case.Status.OPEN, role__in=Membership.CONTRIBUTOR_ROLES)
        .order_by("team__name", "title")
    )


def team_role_for_user(*, user: AbstractBaseUser | AnonymousUser, team_id: Any) -> str | None:
    """The user's role in the team, or None when they are not in it."""
    if not user.is_authenticated or team_id is None:
        return None
    return Membership.objects.filter(team_id=team_id, user=user).values_list("role", flat=True).first()


def audit_events_for_team(*, team: Team, action: str | None = None) -> QuerySet[AuditEvent]:
    """The team's audit log, newest first, optionally of one action (callers check that the reader is an owner)."""
    events = AuditEvent.objects.filter(team=team).select_related("actor")
    if action:
        events = events.filter(action=action)
    return events.order_by("-created_at", "-id")
