"""Owner / other user / anonymous over EVERY route of the site, enumerated from the URL configuration itself.

A route added later is covered automatically: a route that names a new kind of object in its URL fails
`test_every_url_parameter_has_a_value_in_the_matrix` until the matrix knows how to fill it. Rules:
- anonymous: 401 on the API, a redirect to the login page on pages (public routes excepted);
- the other user: 404 on every route that names one of the owner's objects, and never a trace of the
  owner's data in lists and exports;
- the owner: not refused. Media responses carry `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from newsroom.models import ShareLink
from newsroom.services import case_create, team_create
from scans.evidence import evidence_folder
from scans.models import Batch, Scan
from scans.tests.uploads import image_bytes, make_scan_row
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db

SECRET_MARK = "alice-secret-7f3"
EVIDENCE_NAME = "face-0-crop.jpg"
# Routes anyone may use; every other route must refuse an anonymous visitor.
PUBLIC_ROUTES = {
    "landing",
    "accounts:signup",
    "accounts:login",
    "accounts:logout",
    # Password reset is for people who cannot log in; the link's own token is what authorises it.
    "accounts:password_reset",
    "accounts:password_reset_done",
    "accounts:password_reset_confirm",
    "accounts:password_reset_complete",
    "auth_api:token",
    "api:health",
    "api-schema",
    "api-docs",
    # A share link's pages: the unguessable token in the URL is what authorises them (newsroom/tests/test_shares.py).
    "newsroom:shared-scan",
    "newsroom:shared-pdf",
    "newsroom:shared-evidence",
    "newsroom:shared-file",
}
# Routes for staff only: an ordinary signed-in user gets 403.
STAFF_ONLY_ROUTES = {"api:metrics"}
# Third-party staff consoles with their own (staff-only) access control; tested below by a separate check.
STAFF_PREFIXES = ("admin/", "django-rq/")


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    parameters: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/")


def _walk(patterns: list, prefix: str = "", namespace: str | None = None) -> list[Route]:
    routes = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            routes += _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern) and entry.name:
            full = prefix + str(entry.pattern)
            if full.startswith(STAFF_PREFIXES):
                continue
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            parameters = tuple(sorted(entry.pattern.converters)) if hasattr(entry.pattern, "converters") else ()
            routes.append(Route(name=name, pattern=full, parameters=parameters))
    return routes


ROUTES = _walk(get_resolver().url_patterns)
PROTECTED = [route for route in ROUTES if route.name not in PUBLIC_ROUTES]
OBJECT_ROUTES = [route for route in PROTECTED if route.parameters]
COLLECTION_ROUTES = [route for route in PROTECTED if not route.parameters]
KNOWN_PARAMETERS = {"scan_id", "name", "endpoint_id", "batch_id", "team_id", "case_id", "username", "share_id"}


@dataclass
class OwnedObjects:
    scan: Scan
    endpoint_id: int
    batch_id: object
    team_id: object
    case_id: object
    share_id: int

    def kwargs_for(self, route: Route) -> dict[str, object]:
        values = {
            "scan_id": self.scan.id,
            "name": EVIDENCE_NAME,
            "endpoint_id": self.endpoint_id,
            "batch_id": self.batch_id,
            "team_id": self.team_id,
            "case_id": self.case_id,
            # A member route names alice's own membership of her team.
            "username": "alice",
            "share_id": self.share_id,
        }
        return {parameter: values[parameter] for parameter in route.parameters}


@pytest.fixture
def owned(alice, _private_media: Path) -> OwnedObjects:
    """Alice's scan (with a stored upload and one evidence image, in a batch, filed in a case of her team), her
    webhook endpoint, and her team and its case (bob is in neither)."""
    scan = make_scan_row(
        alice,
        original_filename=f"{SECRET_MARK}.jpg",
        status=Scan.Status.DONE,
        verdict=Scan.Verdict.FAKE,
        fake_probability=0.9,
        result={
            "verdict": "fake",
            "fake_probability": 0.9,
            "faces": [],
            "media": {"width": 64, "height": 48},
            "evidence": {"files": [EVIDENCE_NAME]},
        },
    )
    scan.file.save("upload.jpg", ContentFile(image_bytes("JPEG")), save=True)
    default_storage.save(f"{evidence_folder(scan.id)}/{EVIDENCE_NAME}", ContentFile(image_bytes("JPEG")))
    endpoint = webhook_endpoint_create(owner=alice, url=f"https://{SECRET_MARK}.example.com/hook")
    batch = Batch.objects.create(owner=alice)
    team = team_create(creator=alice, name=f"{SECRET_MARK} desk")
    case = case_create(team=team, creator=alice, title=f"{SECRET_MARK} case")
    Scan.objects.filter(pk=scan.pk).update(batch=batch, case=case)
    share = ShareLink.objects.create(scan=scan, created_by=alice, created_by_name="alice")
    return OwnedObjects(
        scan=scan, endpoint_id=endpoint.pk, batch_id=batch.id, team_id=team.pk, case_id=case.pk, share_id=share.pk
    )


def _client_for(user, route: Route, api_client_for) -> APIClient:
    if route.is_api:
        return api_client_for(user)
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def _owner_method(route: Route, owner_client: APIClient, url: str) -> str:
    """GET where the route answers it; POST for action routes (delete) that refuse GET."""
    return "GET" if owner_client.get(url).status_code != 405 else "POST"


def _request(client: APIClient, method: str, url: str):
    return client.generic(method, url)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_matrix_sees_the_routes_it_must_cover():
    names = {route.name for route in ROUTES}
    assert {
        "scans:dashboard",
        "scans:detail",
        "scans:delete",
        "scans:file",
        "api:scan-list",
        "api:scan-detail",
    } <= names


def test_every_url_parameter_has_a_value_in_the_matrix():
    unknown = {(route.name, parameter) for route in PROTECTED for parameter in route.parameters} - {
        (route.name, parameter)
        for route in PROTECTED
        for parameter in route.parameters
        if parameter in KNOWN_PARAMETERS
    }
    assert not unknown, f"add these URL parameters to the isolation matrix: {sorted(unknown)}"


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=[route.name for route in OBJECT_ROUTES])
def test_an_object_route_is_the_owners_alone(route, owned, alice, bob, api_client_for):
    url = reverse(route.name, kwargs=owned.kwargs_for(route))
    owner = _client_for(alice, route, api_client_for)
    method = _owner_method(route, owner, url)

    other = _request(_client_for(bob, route, api_client_for), method, url)
    anonymous = _request(_client_for(None, route, api_client_for), method, url)
    owner_response = _request(owner, method, url)

    assert other.status_code == 404, f"{method} {url} as another user"
    assert SECRET_MARK.encode() not in _body(other)
    if route.is_api:
        assert anonymous.status_code == 401, f"{method} {url} anonymously"
    else:
        assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("accounts:login"))
    assert owner_response.status_code < 400, f"{method} {url} as the owner: {owner_response.status_code}"


@pytest.mark.parametrize(
    "route", [route for route in OBJECT_ROUTES if "scan_id" in route.parameters], ids=lambda route: route.name
)
def test_another_users_scan_is_404_for_every_method(route, owned, bob, api_client_for):
    url = reverse(route.name, kwargs=owned.kwargs_for(route))
    client = _client_for(bob, route, api_client_for)

    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        assert _request(client, method, url).status_code in {404, 405}, f"{method} {url}"
    assert Scan.objects.filter(pk=owned.scan.pk).exists()


@pytest.mark.parametrize("route", COLLECTION_ROUTES, ids=[route.name for route in COLLECTION_ROUTES])
def test_a_collection_route_shows_the_other_user_nothing_of_the_owners(route, owned, bob, api_client_for):
    url = reverse(route.name)
    response = _client_for(bob, route, api_client_for).get(url)

    body = _body(response)
    expected = {403} if route.name in STAFF_ONLY_ROUTES else {200, 405}
    assert response.status_code in expected, f"GET {url} as another user: {response.status_code}"
    assert SECRET_MARK.encode() not in body
    assert str(owned.scan.id).encode() not in body


@pytest.mark.parametrize("route", COLLECTION_ROUTES, ids=[route.name for route in COLLECTION_ROUTES])
def test_a_collection_route_refuses_anonymous_visitors(route, api_client_for):
    url = reverse(route.name)
    client = _client_for(None, route, api_client_for)

    for method in ("GET", "POST"):
        response = client.generic(method, url)
        if route.is_api:
            assert response.status_code == 401, f"{method} {url}"
        else:
            assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_staff_consoles_refuse_ordinary_users(alice):
    client = APIClient()
    client.force_login(alice)

    for url in ("/admin/", "/django-rq/"):
        response = client.get(url)
        assert response.status_code in {302, 403, 404}
        if response.status_code == 302:
            assert "login" in response["Location"]


# --- Media responses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("route_name", ["scans:file", "scans:evidence", "api:scan-evidence"])
def test_media_responses_are_private_and_never_sniffed(route_name, owned, alice, api_client_for):
    route = next(route for route in ROUTES if route.name == route_name)
    response = _client_for(alice, route, api_client_for).get(reverse(route_name, kwargs=owned.kwargs_for(route)))

    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]
    assert "sandbox" in response["Content-Security-Policy"]


def test_with_accel_redirect_the_proxy_sends_the_file(owned, alice, bob, settings):
    settings.UNMASK_MEDIA_ACCEL_REDIRECT = "/protected-media/"
    url = reverse("scans:file", args=[owned.scan.id])
    owner, other = APIClient(), APIClient()
    owner.force_login(alice)
    other.force_login(bob)

    response = owner.get(url)
    refused = other.get(url)

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{owned.scan.file.name}"
    assert response.content == b""
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/jpeg"
    assert refused.status_code == 404
    assert "X-Accel-Redirect" not in refused


def test_without_accel_redirect_django_streams_the_file(owned, alice, settings):
    settings.UNMASK_MEDIA_ACCEL_REDIRECT = ""
    client = APIClient()
    client.force_login(alice)

    response = client.get(reverse("scans:file", args=[owned.scan.id]))

    assert "X-Accel-Redirect" not in response
    assert b"".join(response.streaming_content) == image_bytes("JPEG")


@pytest.mark.parametrize(
    "path",
    [
        "/scans/{id}/file/../../../../etc/passwd",
        "/scans/{id}/file/..%2F..%2F..%2Fetc%2Fpasswd",
        "/scans/{id}/evidence/..%2F..%2Fuploads%2F{stored}",
        "/scans/{id}/evidence/../file/",
        "/scans/{id}/evidence/%2e%2e%2f%2e%2e%2fsettings.py",
        "/scans/{id}/evidence/....%2F%2F....%2F%2Fetc%2Fpasswd",
        "/api/v1/scans/{id}/evidence/..%2F..%2Fuploads%2F{stored}",
        "/api/v1/scans/..%2F{id}/",
        "/media/uploads/{stored}",
        "/media/../var/media/uploads/{stored}",
        "/static/../var/media/uploads/{stored}",
        "/static/%2e%2e/%2e%2e/deepfake_site/settings.py",
        "/uploads/{stored}",
        "/var/media/uploads/{stored}",
    ],
)
def test_path_traversal_variants_are_404(path, owned, alice, api_client_for):
    url = path.format(id=owned.scan.id, stored=Path(owned.scan.file.name).name)
    client = api_client_for(alice)
    client.force_login(alice)

    response = client.get(url)

    assert response.status_code == 404, url
