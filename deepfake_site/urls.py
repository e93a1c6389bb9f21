"""Top-level URL map: landing, accounts, dashboard, API v1, admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from deepfake_site import views
from scans.api_schema import describe_api

describe_api()

urlpatterns = [
    path("", views.landing, name="landing"),
    path("accounts/", include("accounts.urls")),
    path("scans/", include("scans.urls")),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("scans.api_urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a separate file, so the page needs no inline script (CSP).
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    # django-rq checks staff status in its own views.
    path("django-rq/", include("django_rq.urls")),
]
