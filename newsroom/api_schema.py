"""OpenAPI descriptions of the team and case API views (see scans/api_schema.py for why they are declared apart)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer, extend_schema_view

from newsroom import apis
from scans.api_schema import ERROR, NOT_FOUND
from scans.apis import ReviewOutputSerializer

NOT_A_MEMBER = OpenApiResponse(ERROR, description="No such team or case, or one you are not a member of.")
ROLE_REFUSED = OpenApiResponse(ERROR, description="You are a member, but your role does not allow this.")
_described = False


def describe_api() -> None:
    """Attach the schema descriptions to the team and case API views (idempotent)."""
    global _described
    if _described:
        return
    _described = True
    for view, name in (
        (apis.TeamListApi, "TeamInput"),
        (apis.TeamDetailApi, "TeamRename"),
        (apis.TeamMemberListApi, "TeamMemberInput"),
        (apis.TeamMemberDetailApi, "TeamMemberRole"),
        (apis.CaseListApi, "CaseInput"),
        (apis.CaseDetailApi, "CaseUpdate"),
        (apis.ScanReviewListApi, "ScanReviewInput"),
        (apis.ScanShareListApi, "ShareLinkInput"),
    ):
        extend_schema_serializer(component_name=name)(view.InputSerializer)
    extend_schema_serializer(component_name="CaseFilter")(apis.CaseListApi.FilterSerializer)
    extend_schema_serializer(component_name="AuditFilter")(apis.TeamAuditApi.FilterSerializer)
    extend_schema_view(
        get=extend_schema(
            parameters=[apis.TeamAuditApi.FilterSerializer],
            responses={200: apis.AuditEventOutputSerializer(many=True), 403: ROLE_REFUSED, 404: NOT_A_MEMBER},
        )
    )(apis.TeamAuditApi)
    extend_schema_view(
        get=extend_schema(responses=apis.TeamOutputSerializer(many=True)),
        post=extend_schema(
            request=apis.TeamListApi.InputSerializer, responses={201: apis.TeamOutputSerializer, 400: ERROR}
        ),
    )(apis.TeamListApi)
    extend_schema_view(
        get=extend_schema(responses={200: apis.TeamOutputSerializer, 404: NOT_A_MEMBER}),
        patch=extend_schema(
            request=apis.TeamDetailApi.InputSerializer,
            responses={200: apis.TeamOutputSerializer, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_A_MEMBER},
        ),
        delete=extend_schema(responses={204: None, 403: ROLE_REFUSED, 404: NOT_A_MEMBER}),
    )(apis.TeamDetailApi)
    extend_schema_view(
        get=extend_schema(responses={200: apis.MemberOutputSerializer(many=True), 404: NOT_A_MEMBER}),
        post=extend_schema(
            request=apis.TeamMemberListApi.InputSerializer,
            responses={201: apis.MemberOutputSerializer, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_A_MEMBER},
        ),
    )(apis.TeamMemberListApi)
    extend_schema_view(
        get=extend_schema(responses={200: apis.MemberOutputSerializer, 404: NOT_A_MEMBER}),
        patch=extend_schema(
            request=apis.TeamMemberDetailApi.InputSerializer,
            responses={200: apis.MemberOutputSerializer, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_A_MEMBER},
        ),
        delete=extend_schema(responses={204: None, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_A_MEMBER}),
    )(apis.TeamMemberDetailApi)
    extend_schema_view(
        get=extend_schema(
            parameters=[apis.CaseListApi.FilterSerializer],
            responses={200: apis.CaseOutputSerializer(many=True), 404: NOT_A_MEMBER},
        ),
        post=extend_schema(
            request=apis.CaseListApi.InputSerializer,
            responses={201: apis.CaseOutputSerializer, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_A_MEMBER},
        ),
    )(apis.CaseListApi)
    extend_schema_view(
        get=extend_schema(responses={200: apis.CaseOutputSerializer, 404: NOT_A_MEMBER}),
        patch=extend_schema(
            request=apis.CaseDetailApi.InputSerializer,
            responses={200: apis.CaseOutputSerializer, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_A_MEMBER},
        ),
        delete=extend_schema(responses={204: None, 403: ROLE_REFUSED, 404: NOT_A_MEMBER}),
    )(apis.CaseDetailApi)
    extend_schema_view(
        get=extend_schema(responses={200: ReviewOutputSerializer(many=True), 404: NOT_FOUND}),
        post=extend_schema(
            request=apis.ScanReviewListApi.InputSerializer,
            responses={201: ReviewOutputSerializer, 400: ERROR, 403: ROLE_REFUSED, 404: NOT_FOUND},
        ),
    )(apis.ScanReviewListApi)
    extend_schema_view(
        # The listed links say their token prefix, never their URLs (see ShareLinkOutputSerializer). A bare
        # serializer, not an OpenApiResponse: that is what makes this operation a list, not a second retrieve.
        get=extend_schema(
            description="The scan's share links, newest first. Each says its token prefix, state, views and expiry, "
            "never its URL or token: only their digest is stored, and the URL was shown once, when the link was made.",
            responses={200: apis.ShareLinkOutputSerializer(many=True), 403: ROLE_REFUSED, 404: NOT_FOUND},
        ),
        post=extend_schema(
            request=apis.ScanShareListApi.InputSerializer,
            responses={
                201: OpenApiResponse(
                    apis.ShareLinkCreatedOutputSerializer,
                    description="The new link, with its token and URLs: the only response that ever carries them "
                    "(only a digest is stored). Copy them now.",
                ),
                400: ERROR,
                403: ROLE_REFUSED,
                404: NOT_FOUND,
            },
        ),
    )(apis.ScanShareListApi)
    extend_schema_view(
        get=extend_schema(responses={200: apis.ShareLinkOutputSerializer, 403: ROLE_REFUSED, 404: NOT_FOUND}),
        delete=extend_schema(responses={204: None, 403: ROLE_REFUSED, 404: NOT_FOUND}),
    )(apis.ScanShareDetailApi)
