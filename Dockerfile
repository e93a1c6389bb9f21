# One image for web, workers, the reconciler and the one-off set-up (docker-compose.yml).
# The GPU worker's image is the same with --build-arg TF_PACKAGE="tensorflow[and-cuda]==2.21.0": TensorFlow with
# its CUDA libraries instead of the CPU-only build requirements.txt pins (both provide `import tensorflow`, so
# only one of them may be installed).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 \
    UNMASK_VAR_DIR=/srv/unmask/var DJANGO_STATIC_ROOT=/srv/unmask/static
WORKDIR /app

# A fixed uid/gid: nginx runs as the same ids to read the private uploads (mode 0640) it serves by X-Accel-Redirect.
ARG APP_UID=10001
RUN groupadd --system --gid "$APP_UID" unmask \
    && useradd --system --uid "$APP_UID" --gid unmask --home-dir /srv/unmask --no-create-home unmask

COPY requirements.txt ./
ARG TF_PACKAGE=""
RUN if [ -n "$TF_PACKAGE" ]; then \
        grep -Ev '^tensorflow(-cpu)?==' requirements.txt > /tmp/requirements-gpu.txt \
        && pip install --no-cache-dir -r /tmp/requirements-gpu.txt "$TF_PACKAGE"; \
    else \
        pip install --no-cache-dir -r requirements.txt; \
    fi

COPY . .
RUN mkdir -p /srv/unmask/var /srv/unmask/static \
    && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && chown -R unmask:unmask /srv/unmask
USER unmask

EXPOSE 8000
CMD ["gunicorn", "deepfake_site.wsgi", "--bind", "0.0.0.0:8000", "--timeout", "120", "--access-logfile", "-"]
