"""Errors a person sees: branded 404 and 500 pages, never Django's debug page with the URL list."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def test_an_unknown_url_gets_the_branded_404_page(client, settings):
    settings.DEBUG = False

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing at this address" in page and "Unmask" in page
    assert "URLconf" not in page


def test_a_server_error_gets_the_branded_500_page_without_a_request_context():
    response = server_error(RequestFactory().get("/scans/"))

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
