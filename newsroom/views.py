"""Dashboard pages of teams and cases: create a team, manage its members, open and edit its cases, see their scans.

Each page is a GET plus one POST form handler; every action answers with a redirect and a message saying what
happened or why not (the role rules live in `newsroom.services`). A team or case the user is not in is a 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from newsroom.models import AuditEvent, Case, Membership, ShareLink, Team
from newsroom.reviews import scan_review_add
from newsroom.selectors import (
    audit_events_for_team,
    case_get_for_user,
    case_list_for_user,
    team_get_for_user,
    team_list_for_user,
    team_member_get,
    team_members,
)
from newsroom.services import (
    ActionRefused,
    case_create,
    case_delete,
    case_update,
    team_create,
    team_delete,
    team_member_add,
    team_member_change_role,
    team_member_remove,
    team_rename,
)
from newsroom.shares import (
    ShareLinkGone,
    share_link_count_view,
    share_link_create,
    share_link_open,
    share_link_revoke,
)
from scans.evidence import evidence_file_response
from scans.exports import export_response, scan_export_pdf, scan_export_pdf_filename
from scans.models import Scan
from scans.selectors import scan_get_for_user, scan_list_for_user, scan_team_role
from scans.views import scan_detail_context, scan_file_response

CASE_SCANS_PAGE_SIZE = 20
AUDIT_PAGE_SIZE = 50


class TeamCreateForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=100, error_messages={"required": "Give the team a name."})


class MemberAddForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.ANALYST)


class CaseForm(forms.Form):
    title = forms.CharField(label="Title", max_length=200, error_messages={"required": "Give the case a title."})
    note = forms.CharField(label="Note", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class CaseEditForm(CaseForm):
    status = forms.ChoiceField(label="Status", choices=Case.Status.choices)


def _team_or_404(request: HttpRequest, team_id: Any) -> Team:
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except Team.DoesNotExist:
        raise Http404("No such team.") from None


def _case_or_404(request: HttpRequest, case_id: Any) -> Case:
    try:
        return case_get_for_user(user=request.user, case_id=case_id)
    except Case.DoesNotExist:
        raise Http404("No such case.") from None


def _form_errors(form: forms.Form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


@login_required
@require_http_methods(["GET", "POST"])
def teams(request: HttpRequest) -> HttpResponse:
    """The user's teams, and a form to create one."""
    form = TeamCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                team = team_create(creator=request.user, name=form.cleaned_data["name"])
            except ActionRefused as exc:
                form.add_error("name", exc.message)
            else:
                messages.success(request, f"The team “{team.name}” was created; you are its owner.")
                return redirect("newsroom:team", team_id=team.pk)
        status = 400
    user_teams = team_list_for_user(user=request.user).annotate(
        member_count=Count("memberships", distinct=True), case_count=Count("cases", distinct=True)
    )
    return render(request, "newsroom/teams.html", {"form": form, "teams": user_teams}, status=status)


def _team_action(request: HttpRequest, team: Team) -> HttpResponse:
    """One POSTed action on the team page; always a redirect, with a message."""
    action = request.POST.get("action", "")
    try:
        if action == "rename":
            team = team_rename(team=team, name=request.POST.get("name", ""))
            messages.success(request, f"The team is now called “{team.name}”.")
        elif action == "add_member":
            form = MemberAddForm(request.POST)
            if not form.is_valid():
                raise ActionRefused(_form_errors(form))
            membership = team_member_add(team=team, actor=request.user, **form.cleaned_data)
            messages.success(
                request, f"{membership.user.username} was added as {membership.get_role_display().lower()}."
            )
        elif action in ("change_role", "remove_member"):
            try:
                membership = team_member_get(team=team, username=request.POST.get("username", ""))
            except Membership.DoesNotExist:
                raise ActionRefused("That person is not a member of this team.") from None
            if action == "change_role":
                team_member_change_role(
                    team=team, membership=membership, role=request.POST.get("role", ""), actor=request.user
                )
                messages.success(request, f"{membership.user.username} is now {membership.get_role_display().lower()}.")
            else:
                team_member_remove(team=team, membership=membership, actor=request.user)
                if membership.user_id == request.user.pk:
                    messages.success(request, f"You left the team “{team.name}”.")
                    return redirect("newsroom:teams")
                messages.success(request, f"{membership.user.username} was removed from the team.")
        elif action == "new_case":
            form = CaseForm(request.POST)
            if not form.is_valid():
                raise ActionRefused(_form_errors(form))
            case = case_create(team=team, creator=request.user, **form.cleaned_data)
            messages.success(request, f"The case “{case.title}” was opened.")
            return redirect("newsroom:case", case_id=case.pk)
        elif action == "delete_team":
            team_delete(team=team)
            messages.success(request, f"The team “{team.name}” was deleted; its scans are back with their uploaders.")
            return redirect("newsroom:teams")
        else:
            raise ActionRefused("Choose an action on the team page.")
    except ActionRefused as exc:
        messages.error(request, exc.message)
    return redirect("newsroom:team", team_id=team.pk)


@login_required
@require_http_methods(["GET", "POST"])
def team(request: HttpRequest, team_id: Any) -> HttpResponse:
    """One team: its members and roles (owners manage them), its cases (owners and analysts open them)."""
    team = _team_or_404(request, team_id)
    if request.method == "POST":
        return _team_action(request, team)
    cases = case_list_for_user(user=request.user, filters={"team": team.pk}).annotate(scan_count=Count("scans"))
    context = {
        "team": team,
        "members": team_members(team=team),
        "cases": cases,
        "roles": Membership.Role.choices,
        "can_manage": team.role == Membership.Role.OWNER,
        "can_contribute": team.role in Membership.CONTRIBUTOR_ROLES,
        "member_form": MemberAddForm(),
        "case_form": CaseForm(),
    }
    return render(request, "newsroom/team.html", context)


def _case_action(request: HttpRequest, case: Case) -> HttpResponse:
    action = request.POST.get("action", "")
    try:
        if action == "update":
            form = CaseEditForm(request.POST)
            if not form.is_valid():
                raise ActionRefused(_form_errors(form))
            case = case_update(case=case, **form.cleaned_data)
            messages.success(request, f"The case “{case.title}” was saved ({case.get_status_display().lower()}).")
        elif action == "delete_case":
            case_delete(case=case)
            messages.success(request, f"The case “{case.title}” was deleted; its scans are back with their uploaders.")
            return redirect("newsroom:team", team_id=case.team_id)
        else:
            raise ActionRefused("Choose an action on the case page.")
    except ActionRefused as exc:
        messages.error(request, exc.message)
    return redirect("newsroom:case", case_id=case.pk)


@login_required
@require_http_methods(["GET", "POST"])
def case(request: HttpRequest, case_id: Any) -> HttpResponse:
    """One case: its note and status, and every scan filed in it, whoever uploaded it."""
    case = _case_or_404(request, case_id)
    if request.method == "POST":
        return _case_action(request, case)
    scans = scan_list_for_user(user=request.user, filters={"case": case.pk})
    page = Paginator(scans, CASE_SCANS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "case": case,
        "page": page,
        "can_contribute": case.role in Membership.CONTRIBUTOR_ROLES,
        "can_manage": case.role == Membership.Role.OWNER,
        "edit_form": CaseEditForm(initial={"title": case.title, "note": case.note, "status": case.status}),
    }
    return render(request, "newsroom/case.html", context)


@login_required
@require_POST
def scan_review(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """Record a reviewer label (`label`, `note`) on a scan from its page; the page then shows it above the verdict."""
    try:
        scan = scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        raise Http404("No such scan.") from None
    try:
        review = scan_review_add(
            scan=scan,
            reviewer=request.user,
            team_role=scan_team_role(scan=scan, user=request.user),
            label=request.POST.get("label", ""),
            note=request.POST.get("note", ""),
        )
    except ActionRefused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Your review was recorded: {review.get_label_display().lower()}.")
    return redirect("scans:detail", scan_id=scan.pk)


@login_required
@require_http_methods(["GET"])
def team_audit(request: HttpRequest, team_id: Any) -> HttpResponse:
    """The team's audit log, for its owners (other members are told it is for owners: 403)."""
    team = _team_or_404(request, team_id)
    if team.role != Membership.Role.OWNER:
        raise PermissionDenied("Only an owner of this team can read its audit log.")
    action = request.GET.get("action", "")
    action = action if action in AuditEvent.Action.values else ""
    events = audit_events_for_team(team=team, action=action or None)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"team": team, "page": page, "actions": AuditEvent.Action.choices, "action": action}
    return render(request, "newsroom/audit.html", context)


@login_required
@require_POST
def scan_shares(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """From the result page: `action=create` a share link (`expires_in_days`, `include_original`), or
    `action=revoke` one (`link`).

    A new link's URL exists only in this response (the database keeps its digest), so a created link is answered
    with the result page itself showing it once, not with the redirect every other action gets: carrying it to the
    next page would mean storing it (a message rides in a cookie or, when large, the session in the database).
    """
    try:
        scan = scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        raise Http404("No such scan.") from None
    team_role = scan_team_role(scan=scan, user=request.user)
    action = request.POST.get("action", "")
    try:
        if action == "create":
            days = request.POST.get("expires_in_days", "").strip()
            if days and not days.isdigit():
                raise ActionRefused("Choose when the link expires.")
            link = share_link_create(
                scan=scan,
                actor=request.user,
                team_role=team_role,
                expires_in_days=int(days) if days else None,
                include_original=request.POST.get("include_original") == "1",
            )
            return _created_share_page(request, scan=scan, link=link)
        elif action == "revoke":
            link = ShareLink.objects.filter(scan=scan, pk=_int_or_none(request.POST.get("link"))).first()
            if link is None:
                raise ActionRefused("That share link does not exist (any more).")
            share_link_revoke(link=link, actor=request.user, team_role=team_role)
            messages.success(request, "The share link was revoked: it opens nothing any more.")
        else:
            raise ActionRefused("Choose whether to create or revoke a share link.")
    except ActionRefused as exc:
        messages.error(request, exc.message)
    return redirect("scans:detail", scan_id=scan.pk)


def _created_share_page(request: HttpRequest, *, scan: Scan, link: ShareLink) -> HttpResponse:
    """The result page with the new link's URL in its Share box, this once; 201, and never cached (it holds the
    token)."""
    messages.success(request, "A share link was created. Copy it now: it cannot be shown again.")
    context = scan_detail_context(scan, user=request.user)
    context["new_share"] = {
        "url": request.build_absolute_uri(reverse("newsroom:shared-scan", args=[link.plain_token])),
    }
    response = render(request, "scans/detail.html", context, status=201)
    response["Cache-Control"] = "private, no-store"
    return response


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def _shared_headers(response: HttpResponse) -> HttpResponse:
    # The token is the only key: no shared cache keeps the page, no search engine lists it, no Referer carries it.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _open_or_gone(request: HttpRequest, token: str) -> ShareLink | HttpResponse:
    try:
        return share_link_open(token=token)
    except ShareLinkGone as gone:
        page = render(request, "newsroom/shared_gone.html", {"message": gone.message}, status=gone.status_code)
        return _shared_headers(page)


def _shared_urls(link: ShareLink, token: str) -> dict[str, str]:
    # From the token the visitor presented: the link keeps only its digest, so it cannot say its own URLs.
    return {
        "file": reverse("newsroom:shared-file", args=[token]) if link.include_original else "",
        "evidence": reverse("newsroom:shared-evidence", args=[token, "_"])[:-1],
        "pdf": reverse("newsroom:shared-pdf", args=[token]),
        "json": "",
    }


@require_http_methods(["GET"])
def shared_scan(request: HttpRequest, token: str) -> HttpResponse:
    """The read-only result page behind a share link, for anyone who has the link (no account); counted."""
    link = _open_or_gone(request, token)
    if isinstance(link, HttpResponse):
        return link
    share_link_count_view(link=link, what="page")
    context = scan_detail_context(link.scan, user=AnonymousUser(), urls=_shared_urls(link, token), shared=link)
    return _shared_headers(render(request, "scans/detail.html", context))


@require_http_methods(["GET"])
def shared_pdf(request: HttpRequest, token: str) -> HttpResponse:
    """The PDF report behind a share link (its picture only when the link includes the original); counted."""
    link = _open_or_gone(request, token)
    if isinstance(link, HttpResponse):
        return link
    share_link_count_view(link=link, what="pdf")
    return export_response(
        content=scan_export_pdf(scan=link.scan, with_original=link.include_original),
        content_type="application/pdf",
        filename=scan_export_pdf_filename(scan=link.scan),
    )


@require_http_methods(["GET", "HEAD"])
def shared_evidence(request: HttpRequest, token: str, name: str) -> HttpResponse:
    """An evidence image of the shared result page (part of the page: not counted again)."""
    link = _open_or_gone(request, token)
    if isinstance(link, HttpResponse):
        return link
    return evidence_file_response(scan=link.scan, name=name)


@require_http_methods(["GET", "HEAD"])
def shared_file(request: HttpRequest, token: str) -> HttpResponse:
    """The original file, only through a link made with it; counted."""
    link = _open_or_gone(request, token)
    if isinstance(link, HttpResponse):
        return link
    if not link.include_original:
        raise Http404("This link does not include the original file.")
    if request.method == "GET":
        share_link_count_view(link=link, what="original")
    return scan_file_response(link.scan)
