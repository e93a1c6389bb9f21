"""The OpenAPI schema and its docs page, and schemathesis against the live test server: no request gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from django.urls import reverse
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

# Examples per API operation: enough to try odd path ids, filters and bodies, few enough to stay quick.
EXAMPLES_PER_OPERATION = 6


@pytest.fixture
def api_schema(live_server, transactional_db, tiny_models, redis_conn) -> schemathesis.BaseSchema:
    """The schema as the live test server publishes it (a committed database, so the server sees the user)."""
    return schemathesis.openapi.from_url(f"{live_server.url}{reverse('api-schema')}?format=json")


@pytest.fixture
def fuzzing_token(django_user_model) -> str:
    user = django_user_model.objects.create_user("fuzzer", "fuzzer@example.com", "correct-horse-battery-9")
    return Token.objects.create(user=user).key


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # No example database: nothing written into the working tree.
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_api_request_gets_a_server_error(case, fuzzing_token, settings):
    # Set once: every assignment nests one more settings override, and hypothesis runs this body for every example
    # of every operation.
    if settings.UNMASK_UPLOAD_RATE_LIMIT != 0:
        settings.UNMASK_UPLOAD_RATE_LIMIT = 0
    response = case.call(headers={"Authorization": f"Token {fuzzing_token}"}, timeout=60)

    case.validate_response(response, checks=[not_a_server_error])


@pytest.mark.django_db
def test_the_schema_describes_the_scan_api(client):
    document = client.get(reverse("api-schema"), {"format": "json"}).json()

    assert document["openapi"].startswith("3.")
    assert {"/api/v1/scans/", "/api/v1/scans/{scan_id}/", "/api/v1/health/"} <= set(document["paths"])
    upload = document["paths"]["/api/v1/scans/"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"202", "413", "429"} <= set(upload["responses"])
    bulk_delete = document["paths"]["/api/v1/scans/bulk-delete/"]["post"]
    assert "application/json" in bulk_delete["requestBody"]["content"]
    assert {"200", "400"} <= set(bulk_delete["responses"])


@pytest.mark.django_db
def test_the_docs_page_loads_swagger_ui_from_this_site_only(client):
    response = client.get(reverse("api-docs"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "https://" not in page
    assert "<script>" not in page.replace(" ", "")


def test_every_api_view_is_described_without_schema_warnings(tmp_path):
    """A new API view needs its request and response shapes in scans/api_schema.py."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    assert (tmp_path / "schema.yaml").stat().st_size > 0


@pytest.mark.django_db
def test_every_operation_has_a_summary_and_documents_its_401(client):
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()

    operations = [
        (path, method, operation) for path, methods in schema["paths"].items() for method, operation in methods.items()
    ]
    assert operations
    for path, method, operation in operations:
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        authenticated = bool(operation.get("security")) and {} not in operation["security"]
        if authenticated:
            assert "401" in operation["responses"], f"{method.upper()} {path} does not document its 401"
    assert "401" not in schema["paths"]["/api/v1/health/"]["get"]["responses"]
    assert "403" in schema["paths"]["/api/v1/metrics/"]["get"]["responses"]
