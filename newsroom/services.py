"""Writes on teams and cases: create a team, manage its members and roles, open, edit and close its cases.

Who may do what is checked here, from the acting user's role in the team (`role`, as the selectors annotate
it): owners manage members and the team, owners and analysts work on cases, viewers only read. A refusal is
an `ActionRefused` whose message is shown as is; a team or case the actor is not in never reaches a service
(the selectors raise `DoesNotExist` first, which callers answer with 404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from newsroom.audit import audit_record
from newsroom.models import AuditEvent, Case, Membership, Team
from newsroom.selectors import case_get_for_user

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

TEAM_NAME_MAX = Team._meta.get_field("name").max_length
CASE_TITLE_MAX = Case._meta.get_field("title").max_length
CASE_NOTE_MAX = 5000
ROLE_NAMES = ", ".join(Membership.Role.values)


class ActionRefused(Exception):
    """A team or case action the actor may not take, or with input that cannot be used.

    `status_code`: 400 for bad input, 403 for a member whose role does not allow it, 404 for a case the
    actor cannot see (only from `case_for_filing`, whose callers have no selector of their own).
    """

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def require_owner(*, role: str | None, action: str) -> None:
    """Refuse (403) anyone but an owner of the team."""
    if role != Membership.Role.OWNER:
        raise ActionRefused(f"Only an owner of this team can {action}.", status_code=403)


def require_contributor(*, role: str | None, action: str) -> None:
    """Refuse (403) a viewer: only owners and analysts change anything in a team's cases."""
    if role not in Membership.CONTRIBUTOR_ROLES:
        raise ActionRefused(f"Viewers cannot {action}; an owner of the team can make you an analyst.", status_code=403)


def _clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not name:
        raise ActionRefused("Give the team a name.")
    if len(name) > TEAM_NAME_MAX:
        raise ActionRefused(f"A team name has at most {TEAM_NAME_MAX} characters.")
    return name


def _clean_role(role: Any) -> str:
    if role not in Membership.Role.values:
        raise ActionRefused(f"A role is one of: {ROLE_NAMES}.")
    return str(role)


@transaction.atomic
def team_create(*, creator: AbstractBaseUser, name: str) -> Team:
    """A new team named `name`, whose creator is its first owner."""
    team = Team.objects.create(name=_clean_name(name), created_by=creator)
    Membership.objects.create(team=team, user=creator, role=Membership.Role.OWNER)
    team.role = Membership.Role.OWNER
    return team


@transaction.atomic
def team_rename(*, team: Team, name: str) -> Team:
    """Rename the team (owners only)."""
    require_owner(role=getattr(team, "role", None), action="rename the team")
    team.name = _clean_name(name)
    team.save(update_fields=["name"])
    return team


@transaction.atomic
def team_delete(*, team: Team) -> None:
    """Delete the team, its memberships and cases (owners only). The scans filed in its cases stay with the people
    who uploaded them, back in their own space."""
    require_owner(role=getattr(team, "role", None), action="delete the team")
    team.delete()


@transaction.atomic
def team_member_add(*, team: Team, username: str, role: str, actor: AbstractBaseUser) -> Membership:
    """Add the user called `username` to the team with `role` (owners only; in the audit log)."""
    require_owner(role=getattr(team, "role", None), action="add members")
    role = _clean_role(role)
    username = str(username or "").strip()
    if not username:
        raise ActionRefused("Give the username of the person to add.")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ActionRefused(f"There is no user called “{username}”.")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
    except IntegrityError:
        raise ActionRefused(f"{username} is already a member of this team; change their role instead.") from None
    audit_record(
        action=AuditEvent.Action.MEMBER_ADDED, actor=actor, team_id=team.pk, detail={"member": username, "role": role}
    )
    return membership


def _keeps_an_owner(membership: Membership) -> bool:
    """Whether the team has an owner besides `membership` (rows locked, so two demotions cannot both pass)."""
    owners = list(Membership.objects.select_for_update().filter(team_id=membership.team_id, role=Membership.Role.OWNER))
    return any(owner.pk != membership.pk for owner in owners)


@transaction.atomic
def team_member_change_role(*, team: Team, membership: Membership, role: str, actor: AbstractBaseUser) -> Membership:
    """Give a member another role (owners only; in the audit log); the team's last owner stays an owner."""
    require_owner(role=getattr(team, "role", None), action="change roles")
    role = _clean_role(role)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and not _keeps_an_owner(membership):
        raise ActionRefused("A team needs at least one owner: make someone else an owner first.")
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        action=AuditEvent.Action.MEMBER_ROLE_CHANGED,
        actor=actor,
        team_id=team.pk,
        detail={"member": membership.user.get_username(), "role": role, "previous_role": previous},
    )
    return membership


@transaction.atomic
def team_member_remove(*, team: Team, membership: Membership, actor: AbstractBaseUser) -> None:
    """Remove a member (owners), or leave the team (anyone, for themselves); the last owner cannot go."""
    if membership.user_id != actor.pk:
        require_owner(role=getattr(team, "role", None), action="remove members")
    if membership.role == Membership.Role.OWNER and not _keeps_an_owner(membership):
        raise ActionRefused("A team needs at least one owner: make someone else an owner first, or delete the team.")
    membership.delete()
    audit_record(
        action=AuditEvent.Action.MEMBER_REMOVED,
        actor=actor,
        team_id=team.pk,
        detail={"member": membership.user.get_username(), "role": membership.role},
    )


def _clean_case_fields(*, title: Any = None, note: Any = None, status: Any = None) -> dict[str, str]:
    fields: dict[str, str] = {}
    if title is not None:
        title = str(title).strip()
        if not title:
            raise ActionRefused("Give the case a title.")
        if len(title) > CASE_TITLE_MAX:
            raise ActionRefused(f"A case title has at most {CASE_TITLE_MAX} characters.")
        fields["title"] = title
    if note is not None:
        note = str(note).strip()
        if len(note) > CASE_NOTE_MAX:
            raise ActionRefused(f"A case note has at most {CASE_NOTE_MAX} characters.")
        fields["note"] = note
    if status is not None:
        if status not in Case.Status.values:
            raise ActionRefused("A case's status is open or closed.")
        fields["status"] = str(status)
    return fields


@transaction.atomic
def case_create(*, team: Team, creator: AbstractBaseUser, title: str, note: str = "") -> Case:
    """A new open case in the team (owners and analysts)."""
    require_contributor(role=getattr(team, "role", None), action="open cases")
    if title is None:
        raise ActionRefused("Give the case a title.")
    fields = _clean_case_fields(title=title, note=note or "")
    case = Case.objects.create(team=team, created_by=creator, **fields)
    case.role = team.role
    return case


@transaction.atomic
def case_update(*, case: Case, title: str | None = None, note: str | None = None, status: str | None = None) -> Case:
    """Change a case's title, note or status (owners and analysts); closing it stops new filings."""
    require_contributor(role=getattr(case, "role", None), action="edit cases")
    fields = _clean_case_fields(title=title, note=note, status=status)
    for name, value in fields.items():
        setattr(case, name, value)
    if fields:
        case.save(update_fields=[*fields, "updated_at"])
    return case


@transaction.atomic
def case_delete(*, case: Case) -> None:
    """Delete a case (owners only); its scans go back to the space of the people who uploaded them."""
    require_owner(role=getattr(case, "role", None), action="delete cases")
    case.delete()


def case_for_filing(*, user: AbstractBaseUser | AnonymousUser, case_id: Any) -> Case:
    """The case `user` asks to file a scan into, if they may: 404 for a case they cannot see, 403 for a viewer,
    400 for a closed case."""
    try:
        case = case_get_for_user(user=user, case_id=case_id)
    except Case.DoesNotExist:
        raise ActionRefused("No such case.", status_code=404) from None
    require_contributor(role=case.role, action="file scans into this team's cases")
    if not case.is_open:
        raise ActionRefused("This case is closed: reopen it before filing scans into it.")
    return case
