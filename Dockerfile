# One image for web, worker and reconciler; the GPU worker builds with --build-arg TF_PACKAGE="tensorflow[and-cuda]==2.21.0".
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 \
    UNMASK_VAR_DIR=/srv/unmask/var DJANGO_STATIC_ROOT=/srv/unmask/static
WORKDIR /app

COPY requirements.txt ./
ARG TF_PACKAGE=""
RUN pip install --no-cache-dir -r requirements.txt gunicorn==23.0.0 \
    && if [ -n "$TF_PACKAGE" ]; then pip install --no-cache-dir "$TF_PACKAGE"; fi

COPY . .
RUN useradd --system --home /srv/unmask unmask && mkdir -p /srv/unmask/var /srv/unmask/static \
    && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && chown -R unmask /srv/unmask
USER unmask

EXPOSE 8000
CMD ["gunicorn", "deepfake_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60"]
