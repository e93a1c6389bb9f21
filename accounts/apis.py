"""Token API (DRF): obtain a token with username and password, regenerate it when signed in."""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import token_regenerate
from accounts.throttling import login_lockout_of


class TokenObtainApi(ObtainAuthToken):
    """POST username + password -> {"token": ...}: the user's token, created on first use.

    After too many failed attempts from one address, for one account or for many, log-in is locked out for a
    while: 429, with Retry-After in seconds.
    """

    # The credentials in the body are the authentication; no session or CSRF token is involved.
    authentication_classes: list = []

    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.ValidationError:
            lockout = login_lockout_of(request)
            if lockout is not None:
                raise exceptions.Throttled(wait=lockout.retry_after, detail=lockout.message) from None
            raise


class TokenRegenerateApi(APIView):
    """POST (authenticated) -> {"token": ...}: a new token; the one used to call this stops working."""

    def post(self, request: Request) -> Response:
        token = token_regenerate(user=request.user)
        return Response({"token": token.key}, status=status.HTTP_200_OK)
