"""Team and case API (DRF): thin views that find the object through the caller's membership, call a service, and
serialise the answer. A team or case the caller is not in is a 404; a member whose role does not allow an action
gets 403 with the reason."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from newsroom.models import AuditEvent, Case, Membership, ScanReview, ShareLink, Team
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
    require_owner,
    team_create,
    team_delete,
    team_member_add,
    team_member_change_role,
    team_member_remove,
    team_rename,
)
from newsroom.shares import share_link_create, share_link_revoke, share_links_for_scan
from scans.apis import ReviewOutputSerializer
from scans.models import Scan
from scans.reviews import review_data, scan_review_data
from scans.selectors import scan_get_for_user, scan_team_role


class MemberOutputSerializer(serializers.Serializer):
    """One person in a team and their role."""

    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    added_at = serializers.DateTimeField(source="created_at")


class TeamOutputSerializer(serializers.Serializer):
    """A team, the caller's role in it, and its members."""

    id = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, help_text="Your role in the team.")
    members = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_url(self, team: Team) -> str:
        return self.context["request"].build_absolute_uri(reverse("newsroom_api:team-detail", args=[team.pk]))

    @extend_schema_field(MemberOutputSerializer(many=True))
    def get_members(self, team: Team) -> list[dict[str, Any]]:
        return MemberOutputSerializer(team_members(team=team), many=True).data


class CaseOutputSerializer(serializers.Serializer):
    """A case of one of the caller's teams."""

    id = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    scans_url = serializers.SerializerMethodField(help_text="Its scans: the scan list filtered by this case.")
    team = serializers.UUIDField(source="team_id")
    team_name = serializers.CharField(source="team.name")
    title = serializers.CharField()
    note = serializers.CharField()
    status = serializers.ChoiceField(choices=Case.Status.choices)
    role = serializers.ChoiceField(choices=Membership.Role.choices, help_text="Your role in the case's team.")
    scan_count = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_url(self, case: Case) -> str:
        return self.context["request"].build_absolute_uri(reverse("newsroom_api:case-detail", args=[case.pk]))

    def get_scans_url(self, case: Case) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:scan-list") + f"?case={case.pk}")

    def get_scan_count(self, case: Case) -> int:
        counted = getattr(case, "scan_count", None)
        return counted if counted is not None else case.scans.count()


def _refused(exc: ActionRefused) -> Response:
    return Response({"detail": exc.message}, status=exc.status_code)


def _team_or_404(request: Request, team_id: str) -> Team:
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except Team.DoesNotExist:
        raise NotFound("No such team.") from None


def _case_or_404(request: Request, case_id: str) -> Case:
    try:
        return case_get_for_user(user=request.user, case_id=case_id)
    except Case.DoesNotExist:
        raise NotFound("No such case.") from None


class TeamListApi(APIView):
    """GET: the teams the caller is in. POST `{"name": ...}`: a new team, with the caller as its owner."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, help_text="The team's name (at most 100 characters).")

    def get(self, request: Request) -> Response:
        teams = team_list_for_user(user=request.user)
        return Response(TeamOutputSerializer(teams, many=True, context={"request": request}).data)

    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            team = team_create(creator=request.user, name=payload.validated_data["name"])
        except ActionRefused as exc:
            return _refused(exc)
        data = TeamOutputSerializer(team, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


class TeamDetailApi(APIView):
    """GET: one of the caller's teams. PATCH `{"name"}`: rename it; DELETE: delete it (owners; scans filed in its
    cases go back to their uploaders' own space)."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    def get(self, request: Request, team_id: str) -> Response:
        return Response(TeamOutputSerializer(_team_or_404(request, team_id), context={"request": request}).data)

    def patch(self, request: Request, team_id: str) -> Response:
        team = _team_or_404(request, team_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            team = team_rename(team=team, name=payload.validated_data["name"])
        except ActionRefused as exc:
            return _refused(exc)
        return Response(TeamOutputSerializer(team, context={"request": request}).data)

    def delete(self, request: Request, team_id: str) -> Response:
        team = _team_or_404(request, team_id)
        try:
            team_delete(team=team)
        except ActionRefused as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamMemberListApi(APIView):
    """GET: the team's members. POST `{"username", "role"}`: add someone (owners)."""

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    def get(self, request: Request, team_id: str) -> Response:
        team = _team_or_404(request, team_id)
        return Response(MemberOutputSerializer(team_members(team=team), many=True).data)

    def post(self, request: Request, team_id: str) -> Response:
        team = _team_or_404(request, team_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            membership = team_member_add(team=team, actor=request.user, **payload.validated_data)
        except ActionRefused as exc:
            return _refused(exc)
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class TeamMemberDetailApi(APIView):
    """GET: one member. PATCH `{"role"}`: change it (owners). DELETE: remove the member (owners), or leave the team
    (anyone, with their own username). The last owner stays."""

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    def _member_or_404(self, team: Team, username: str) -> Membership:
        try:
            return team_member_get(team=team, username=username)
        except Membership.DoesNotExist:
            raise NotFound("No such member of this team.") from None

    def get(self, request: Request, team_id: str, username: str) -> Response:
        team = _team_or_404(request, team_id)
        return Response(MemberOutputSerializer(self._member_or_404(team, username)).data)

    def patch(self, request: Request, team_id: str, username: str) -> Response:
        team = _team_or_404(request, team_id)
        membership = self._member_or_404(team, username)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            membership = team_member_change_role(
                team=team, membership=membership, role=payload.validated_data["role"], actor=request.user
            )
        except ActionRefused as exc:
            return _refused(exc)
        return Response(MemberOutputSerializer(membership).data)

    def delete(self, request: Request, team_id: str, username: str) -> Response:
        team = _team_or_404(request, team_id)
        membership = self._member_or_404(team, username)
        try:
            team_member_remove(team=team, membership=membership, actor=request.user)
        except ActionRefused as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CaseListApi(APIView):
    """GET: the cases of the caller's teams (`?team=`, `?status=`). POST `{"team", "title", "note"}`: open a case
    (owners and analysts of that team)."""

    class FilterSerializer(serializers.Serializer):
        team = serializers.UUIDField(required=False, help_text="Only this team's cases.")
        status = serializers.ChoiceField(choices=Case.Status.choices, required=False)

    class InputSerializer(serializers.Serializer):
        team = serializers.UUIDField(help_text="One of your teams, where you are an owner or an analyst.")
        title = serializers.CharField(max_length=200)
        note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        if filters.validated_data.get("team"):
            _team_or_404(request, filters.validated_data["team"])
        cases = case_list_for_user(user=request.user, filters=filters.validated_data).annotate(
            scan_count=Count("scans")
        )
        return Response(CaseOutputSerializer(cases, many=True, context={"request": request}).data)

    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        team = _team_or_404(request, payload.validated_data["team"])
        try:
            case = case_create(
                team=team,
                creator=request.user,
                title=payload.validated_data["title"],
                note=payload.validated_data["note"],
            )
        except ActionRefused as exc:
            return _refused(exc)
        data = CaseOutputSerializer(case, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


class CaseDetailApi(APIView):
    """GET: one case. PATCH `{"title", "note", "status"}` (any of them): edit it (owners and analysts). DELETE:
    delete it (owners; its scans go back to their uploaders' own space)."""

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200, required=False)
        note = serializers.CharField(max_length=5000, required=False, allow_blank=True)
        status = serializers.ChoiceField(choices=Case.Status.choices, required=False)

    def get(self, request: Request, case_id: str) -> Response:
        return Response(CaseOutputSerializer(_case_or_404(request, case_id), context={"request": request}).data)

    def patch(self, request: Request, case_id: str) -> Response:
        case = _case_or_404(request, case_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            case = case_update(case=case, **payload.validated_data)
        except ActionRefused as exc:
            return _refused(exc)
        return Response(CaseOutputSerializer(case, context={"request": request}).data)

    def delete(self, request: Request, case_id: str) -> Response:
        case = _case_or_404(request, case_id)
        try:
            case_delete(case=case)
        except ActionRefused as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScanReviewListApi(APIView):
    """GET: a scan's reviewer labels, newest first (the first is the current one). POST `{"label", "note"}`: record
    a human decision (the uploader, or an owner or analyst of the scan's team; viewers 403; others 404)."""

    class InputSerializer(serializers.Serializer):
        label = serializers.ChoiceField(choices=ScanReview.Label.choices)
        note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def get(self, request: Request, scan_id: str) -> Response:
        scan = _scan_or_404(request, scan_id)
        return Response(ReviewOutputSerializer(scan_review_data(scan=scan)["history"], many=True).data)

    def post(self, request: Request, scan_id: str) -> Response:
        scan = _scan_or_404(request, scan_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            review = scan_review_add(
                scan=scan,
                reviewer=request.user,
                team_role=scan_team_role(scan=scan, user=request.user),
                **payload.validated_data,
            )
        except ActionRefused as exc:
            return _refused(exc)
        return Response(ReviewOutputSerializer(review_data(review)).data, status=status.HTTP_201_CREATED)


def _scan_or_404(request: Request, scan_id: str) -> Scan:
    try:
        return scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        raise NotFound("No such scan.") from None


class AuditEventOutputSerializer(serializers.Serializer):
    """One entry of a team's audit log."""

    action = serializers.ChoiceField(choices=AuditEvent.Action.choices)
    action_text = serializers.CharField(source="get_action_display")
    actor = serializers.CharField(source="actor_name", help_text="Username; empty for a share link's viewer.")
    scan = serializers.UUIDField(source="scan_reference", allow_null=True)
    scan_name = serializers.CharField()
    detail = serializers.DictField(help_text="What changed: the label, the cases of a move, the member and role, ...")
    created_at = serializers.DateTimeField()


class AuditPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class TeamAuditApi(APIView):
    """GET: the team's audit log, newest first (`?action=`), for its owners: who uploaded, viewed through a share
    link, labelled, shared, moved or deleted its scans, and who changed its members."""

    class FilterSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=AuditEvent.Action.choices, required=False)

    def get(self, request: Request, team_id: str) -> Response:
        team = _team_or_404(request, team_id)
        try:
            require_owner(role=team.role, action="read the audit log")
        except ActionRefused as exc:
            return _refused(exc)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = audit_events_for_team(team=team, action=filters.validated_data.get("action"))
        paginator = AuditPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventOutputSerializer(page, many=True).data)


class ShareLinkOutputSerializer(serializers.Serializer):
    """A read-only link to a scan's result page and PDF, as listed: never its URL or token, which are stored only as
    a digest (see `ShareLinkCreatedOutputSerializer`)."""

    id = serializers.IntegerField()
    token_prefix = serializers.CharField(
        help_text="The first 8 characters of the link's token, to tell the links apart; it opens nothing."
    )
    state = serializers.SerializerMethodField(help_text="active, expired or revoked.")
    include_original = serializers.BooleanField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    view_count = serializers.IntegerField(help_text="Views of the page, the PDF and the original through the link.")
    last_viewed_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by_name")
    created_at = serializers.DateTimeField()

    def get_state(self, link: ShareLink) -> str:
        return link.state(timezone.now())


class ShareLinkCreatedOutputSerializer(ShareLinkOutputSerializer):
    """A link just made: the listed fields plus its token and URLs, in this one response only (the link must be the
    instance `share_link_create` returned, the only one that holds its token)."""

    token = serializers.CharField(
        source="plain_token", help_text="The secret in the URL. Shown once: only its digest is stored."
    )
    url = serializers.SerializerMethodField(
        help_text="The public page: anyone with it can read the result. Shown once: copy it now."
    )
    pdf_url = serializers.SerializerMethodField(help_text="The PDF report through the link. Shown once.")

    def get_url(self, link: ShareLink) -> str:
        return self.context["request"].build_absolute_uri(reverse("newsroom:shared-scan", args=[link.plain_token]))

    def get_pdf_url(self, link: ShareLink) -> str:
        return self.context["request"].build_absolute_uri(reverse("newsroom:shared-pdf", args=[link.plain_token]))


class ScanShareListApi(APIView):
    """GET: the scan's share links (without their URLs). POST `{"expires_in_days", "include_original"}`: a new one,
    answered with its URL, the only time it is shown. For the scan's uploader and its team's owners and analysts
    (viewers 403; anyone else 404)."""

    class InputSerializer(serializers.Serializer):
        expires_in_days = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=365, help_text="Omit or null: never expires."
        )
        include_original = serializers.BooleanField(
            required=False, default=False, help_text="Whether the link also serves the original file (off by default)."
        )

    def get(self, request: Request, scan_id: str) -> Response:
        scan = _scan_or_404(request, scan_id)
        try:
            links = share_links_for_scan(
                scan=scan, user=request.user, team_role=scan_team_role(scan=scan, user=request.user)
            )
        except ActionRefused as exc:
            return _refused(exc)
        return Response(ShareLinkOutputSerializer(links, many=True, context={"request": request}).data)

    def post(self, request: Request, scan_id: str) -> Response:
        scan = _scan_or_404(request, scan_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            link = share_link_create(
                scan=scan,
                actor=request.user,
                team_role=scan_team_role(scan=scan, user=request.user),
                **payload.validated_data,
            )
        except ActionRefused as exc:
            return _refused(exc)
        data = ShareLinkCreatedOutputSerializer(link, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class ScanShareDetailApi(APIView):
    """GET: one share link of the scan (without its URL). DELETE: revoke it (it opens nothing any more; it stays listed)."""

    def _link_or_404(self, request: Request, scan_id: str, share_id: str) -> tuple[ShareLink, str | None]:
        scan = _scan_or_404(request, scan_id)
        team_role = scan_team_role(scan=scan, user=request.user)
        try:
            share_links_for_scan(scan=scan, user=request.user, team_role=team_role)
        except ActionRefused as exc:
            raise PermissionDenied(exc.message) from None
        link = ShareLink.objects.filter(scan=scan, pk=_positive_int(share_id)).select_related("scan__case").first()
        if link is None:
            raise NotFound("No such share link.")
        return link, team_role

    def get(self, request: Request, scan_id: str, share_id: str) -> Response:
        link, _team_role = self._link_or_404(request, scan_id, share_id)
        return Response(ShareLinkOutputSerializer(link, context={"request": request}).data)

    def delete(self, request: Request, scan_id: str, share_id: str) -> Response:
        link, team_role = self._link_or_404(request, scan_id, share_id)
        try:
            share_link_revoke(link=link, actor=request.user, team_role=team_role)
        except ActionRefused as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _positive_int(value: str) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None
