"""WSGI entry point (gunicorn deepfake_site.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")

application = get_wsgi_application()

from deepfake_site.checks import refuse_to_serve_with_a_known_secret_key  # noqa: E402 (needs the settings above)

refuse_to_serve_with_a_known_secret_key()
