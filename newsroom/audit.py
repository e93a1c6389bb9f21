"""The audit log's one writer: `audit_record`, called by the services that upload, move, delete, label and share
scans and that change a team's members. Imports nothing from `scans`, so the scan services can call it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from newsroom.models import AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def audit_record(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None,
    team_id: uuid.UUID | None = None,
    scan_id: uuid.UUID | str | None = None,
    scan_name: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event (inside the caller's transaction, so it is kept exactly when the action is).

    `actor` None or anonymous: someone without an account (a share link's viewer).
    """
    signed_in = actor is not None and actor.is_authenticated
    return AuditEvent.objects.create(
        action=action,
        actor=actor if signed_in else None,
        actor_name=actor.get_username() if signed_in else "",
        team_id=team_id,
        scan_reference=scan_id,
        scan_name=scan_name[:255],
        detail=detail or {},
    )
