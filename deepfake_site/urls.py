"""Top-level URL map: landing, accounts, dashboard, webhooks, API v1, admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import api_schema as account_api_schema
from deepfake_site import views
from newsroom import api_schema as newsroom_api_schema
from scans import api_schema as scan_api_schema
from webhooks import api_schema as webhook_api_schema

for app_api_schema in (account_api_schema, scan_api_schema, webhook_api_schema, newsroom_api_schema):
    app_api_schema.describe_api()

urlpatterns = [
    path("", views.landing, name="landing"),
    path("accounts/", include("accounts.urls")),
    # The webhooks page sits among the dashboard's pages.
    path("scans/webhooks/", include("webhooks.urls")),
    path("scans/", include("scans.urls")),
    path("", include("newsroom.urls")),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("scans.api_urls")),
    path("api/v1/", include("webhooks.api_urls")),
    path("api/v1/", include("newsroom.api_urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a separate file, so the page needs no inline script (CSP).
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    # django-rq checks staff status in its own views.
    path("django-rq/", include("django_rq.urls")),
]
