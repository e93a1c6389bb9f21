"""The production deployment files: docker-compose.yml, the Dockerfile, deploy/nginx.conf, deploy/healthcheck.py.

Docker cannot run where the tests run, so this checks what can be checked without it: the compose file names
every service the README promises, sets what the settings need, runs real management commands with real
options; the Dockerfile installs what CI installs and its collectstatic works; nginx serves private media only
through the internal location Django redirects to (run for real when an nginx binary is installed).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import get_commands, load_command_class
from django.test import Client
from django.urls import reverse

from scans.models import Scan
from scans.protected_media import MEDIA_CONTENT_SECURITY_POLICY
from scans.tests.uploads import gradient_png, make_scan_row

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
NGINX_CONF = (ROOT / "deploy" / "nginx.conf").read_text()
APP_SERVICES = ("migrate", "web", "worker", "gpu-worker", "webhook-worker", "reconciler")
ALL_SERVICES = {*APP_SERVICES, "nginx", "postgres", "redis"}
# Variables the containers must get from compose itself (services, paths, the media hand-off), never from .env.
FIXED_BY_COMPOSE = {
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "UNMASK_VAR_DIR",
    "UNMASK_MEDIA_ROOT",
    "UNMASK_MODEL_ROOT",
    "DJANGO_STATIC_ROOT",
    "UNMASK_MEDIA_ACCEL_REDIRECT",
}


def _settings_variables() -> set[str]:
    """Every environment variable deepfake_site/settings.py reads, through its env helpers or os.environ."""
    source = (ROOT / "deepfake_site" / "settings.py").read_text()
    helper_calls = re.findall(r"\benv(?:bool|int|float|list)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source)
    direct_reads = re.findall(r"os\.environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\"", source)
    # settings.py also *writes* one variable for OpenCV (os.environ["OPENCV_..."] = ...): that is not a setting.
    written = set(re.findall(r"os\.environ\[\"([A-Z][A-Z0-9_]*)\"\]\s*=", source))
    return (set(helper_calls) | set(direct_reads)) - written


def _env_example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0].strip() for line in lines if "=" in line and not line.lstrip().startswith("#")}


def _app_environment(service: str = "web") -> dict[str, str]:
    return {name: str(value) for name, value in COMPOSE["services"][service]["environment"].items()}


def _command_words(service: str) -> list[str]:
    command = COMPOSE["services"][service]["command"]
    return command if isinstance(command, list) else shlex.split(command)


def _compose_interpolated_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))


def _nginx_location(path: str) -> str:
    match = re.search(r"location\s+" + re.escape(path) + r"\s*\{(?P<body>[^}]*)\}", NGINX_CONF)
    assert match, f"deploy/nginx.conf has no `location {path}` block"
    return match.group("body")


# --- docker-compose.yml ---------------------------------------------------------------------------------------


def test_the_compose_file_names_every_service():
    assert set(COMPOSE["services"]) == ALL_SERVICES
    assert set(COMPOSE["volumes"]) >= {"unmask-var", "static", "postgres-data", "redis-data"}
    for service in ("web", "worker", "gpu-worker", "webhook-worker", "postgres", "redis", "nginx"):
        assert COMPOSE["services"][service].get("healthcheck"), f"{service} has no health check"


def test_web_runs_gunicorn_and_the_workers_run_the_scan_worker():
    services = COMPOSE["services"]
    assert _command_words("web")[:2] == ["gunicorn", "deepfake_site.wsgi"]
    assert _command_words("worker") == ["python", "manage.py", "scan_worker", "scans"]
    assert _command_words("gpu-worker") == ["python", "manage.py", "scan_worker", "videos", "scans"]
    # Deliveries have workers of their own, so a slow receiver never holds up a scan.
    assert _command_words("webhook-worker") == ["python", "manage.py", "webhook_worker"]
    gpu = services["gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"]["TF_PACKAGE"] == "tensorflow[and-cuda]==2.21.0"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    # Without the gpu profile nothing else depends on the GPU worker, so a machine without a GPU still starts.
    assert all("gpu-worker" not in (services[name].get("depends_on") or {}) for name in ALL_SERVICES)
    assert all("profiles" not in services[name] for name in ALL_SERVICES - {"gpu-worker"})


def test_every_app_service_waits_for_the_database_redis_and_the_migrations():
    services = COMPOSE["services"]
    for service in APP_SERVICES:
        depends_on = services[service]["depends_on"]
        assert depends_on["postgres"]["condition"] == depends_on["redis"]["condition"] == "service_healthy"
        if service != "migrate":
            assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"


def test_redis_never_evicts_and_postgres_keeps_its_data_in_a_volume():
    redis_command = COMPOSE["services"]["redis"]["command"]
    assert redis_command[redis_command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in COMPOSE["services"]["redis"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in COMPOSE["services"]["postgres"]["volumes"]


def test_compose_runs_real_management_commands_with_real_options():
    commands = get_commands()
    for service in APP_SERVICES:
        command = COMPOSE["services"][service]["command"]
        text = command if isinstance(command, str) else shlex.join(command)
        for invocation in re.split(r"&&", text.removeprefix("sh -c").strip().strip('"')):
            words = shlex.split(invocation.strip().strip('"'))
            if words[:2] != ["python", "manage.py"]:
                continue
            name, arguments = words[2], words[3:]
            assert name in commands, f"{service}: no management command {name!r}"
            parser = load_command_class(commands[name], name).create_parser("manage.py", name)
            # argparse exits on an unknown option; parse_known_args would hide it.
            parser.parse_args(arguments)


def test_the_containers_get_every_variable_the_settings_read():
    environment = _app_environment()
    for service in APP_SERVICES:
        assert COMPOSE["services"][service]["env_file"] == [{"path": ".env", "required": False}]
        assert _app_environment(service).items() >= {k: environment[k] for k in FIXED_BY_COMPOSE}.items()
    assert set(environment) >= FIXED_BY_COMPOSE
    # The rest comes from the operator's .env (env_file), so .env.example must offer each of them.
    from_dotenv = _settings_variables() - set(environment)
    assert from_dotenv <= _env_example_variables(), sorted(from_dotenv - _env_example_variables())
    assert environment["DJANGO_DEBUG"] == "0"
    assert (
        environment["DATABASE_URL"].startswith("postgres://unmask:")
        and "@postgres:5432/" in environment["DATABASE_URL"]
    )
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    # No weak fallback: compose refuses to start without these two secrets.
    assert environment["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]


def test_the_paths_compose_sets_lie_on_the_volumes_it_mounts():
    environment = _app_environment()
    mounts = dict(volume.split(":")[1::-1] for volume in COMPOSE["services"]["web"]["volumes"])
    assert mounts["/srv/unmask/var"] == "unmask-var"
    assert mounts["/srv/unmask/static"] == "static"
    for name in ("UNMASK_VAR_DIR", "UNMASK_MEDIA_ROOT", "UNMASK_MODEL_ROOT"):
        assert environment[name].startswith("/srv/unmask/var"), name
    assert environment["DJANGO_STATIC_ROOT"] == "/srv/unmask/static"


def test_env_example_lists_every_variable_the_settings_read_and_compose_uses():
    documented = _env_example_variables()

    assert _settings_variables() <= documented, sorted(_settings_variables() - documented)
    assert _compose_interpolated_variables() <= documented, sorted(_compose_interpolated_variables() - documented)


def test_the_variable_scan_is_not_vacuous():
    found = _settings_variables()

    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "UNMASK_MEDIA_ACCEL_REDIRECT", "UNMASK_WEBHOOK_QUEUE"} <= found
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in found


# --- nginx -------------------------------------------------------------------------------------------------------


def test_nginx_sends_private_media_only_through_the_internal_location_django_redirects_to():
    environment = _app_environment()
    location = environment["UNMASK_MEDIA_ACCEL_REDIRECT"]
    body = _nginx_location(location)

    assert re.search(r"^\s*internal;", body, re.MULTILINE)
    assert re.search(r"^\s*alias\s+" + re.escape(environment["UNMASK_MEDIA_ROOT"].rstrip("/") + "/") + ";", body, re.M)
    assert f'"{MEDIA_CONTENT_SECURITY_POLICY}"' in body
    assert "nosniff" in body
    static = _nginx_location("/" + django_settings.STATIC_URL.strip("/") + "/")
    assert f"alias {environment['DJANGO_STATIC_ROOT']}/;" in static
    nginx = COMPOSE["services"]["nginx"]
    assert {"./deploy/nginx.conf:/etc/nginx/nginx.conf:ro", "static:/srv/unmask/static:ro"} <= set(nginx["volumes"])
    assert "unmask-var:/srv/unmask/var:ro" in nginx["volumes"]
    assert "server web:8000;" in NGINX_CONF


def test_nginx_runs_as_the_app_user_that_owns_the_uploads():
    app_uid = re.search(r"^ARG APP_UID=(\d+)$", DOCKERFILE, re.MULTILINE).group(1)

    assert COMPOSE["services"]["nginx"]["user"] == f"{app_uid}:{app_uid}"
    assert django_settings.FILE_UPLOAD_PERMISSIONS == 0o640


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _get(url: str, *, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    """One GET, redirects not followed: (status, headers, body)."""
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})  # noqa: S310 (loopback)
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def nginx_in_front_of(tmp_path: Path):
    """Starts the real deploy/nginx.conf, re-pointed at the live test server and the test's folders."""
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): deploy/nginx.conf was not run for real")
    processes = []

    def start(*, upstream: str, static_root: Path) -> str:
        port = _free_port()
        config = NGINX_CONF
        # The temporary folder nginx.conf names, which the test moves into its own (bandit's B108 is about using it).
        conf_temp_folder = "/tmp/nginx"  # nosec B108
        # In this order: the test's folders are themselves under /tmp.
        replacements = {
            conf_temp_folder: f"{tmp_path}/nginx",
            "server web:8000;": f"server {upstream};",
            "listen 8080 default_server;": f"listen 127.0.0.1:{port} default_server;",
            "/srv/unmask/var/media/": f"{django_settings.MEDIA_ROOT}/",
            "/srv/unmask/static/": f"{static_root}/",
        }
        for old, new in replacements.items():
            assert old in config, old
            config = config.replace(old, new)
        if os.geteuid() == 0:
            # As root nginx would drop its workers to `nobody`, who cannot read the test's private folders.
            config = "user root;\n" + config
        config_path = tmp_path / "nginx.conf"
        config_path.write_text(config)
        checked = subprocess.run([binary, "-t", "-c", str(config_path)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(  # noqa: S603 (our own binary and config)
            [binary, "-c", str(config_path), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                if _get(base + "/nginx-health")[0] == 200:
                    return base
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
            time.sleep(0.1)

    yield start
    for process in processes:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_nginx_serves_an_owners_upload_after_djangos_check_and_nobody_else(
    alice, bob, live_server, settings, tmp_path, nginx_in_front_of
):
    settings.UNMASK_MEDIA_ACCEL_REDIRECT = _app_environment()["UNMASK_MEDIA_ACCEL_REDIRECT"]
    content = gradient_png()
    stored = default_storage.save("uploads/nginx-probe.png", ContentFile(content))
    scan = make_scan_row(alice, file=stored, content_type="image/png", status=Scan.Status.DONE)
    static_root = tmp_path / "static"
    (static_root / "css").mkdir(parents=True)
    (static_root / "css" / "probe.css").write_text("body { color: black; }\n")
    base = nginx_in_front_of(upstream=live_server.url.removeprefix("http://"), static_root=static_root)

    def session_cookie(user) -> str:
        client = Client()
        client.force_login(user)
        return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"

    file_url = base + reverse("scans:file", args=[scan.pk])
    status, headers, body = _get(file_url, cookie=session_cookie(alice))
    assert status == 200 and body == content
    assert "X-Accel-Redirect" not in headers
    assert headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == MEDIA_CONTENT_SECURITY_POLICY
    assert headers["Cache-Control"] == "private, max-age=3600"
    assert _get(file_url, cookie=session_cookie(bob))[0] == 404
    assert _get(file_url)[0] == 302  # anonymous: to the login page
    assert _get(base + "/protected-media/" + stored)[0] == 404  # internal: no URL reaches it from outside
    static_status, _static_headers, static_body = _get(base + "/static/css/probe.css")
    assert static_status == 200 and static_body == b"body { color: black; }\n"


# --- Dockerfile --------------------------------------------------------------------------------------------------


def _run_lines() -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.strip()[4:] for line in joined.splitlines() if line.strip().startswith("RUN ")]


def test_the_dockerfile_installs_requirements_txt_as_ci_does():
    runs = " ".join(_run_lines())
    makefile = (ROOT / "Makefile").read_text()

    assert "pip install --no-cache-dir -r requirements.txt" in runs
    assert "pip install -q -r requirements.txt" in makefile  # `make test` (CI) installs the same file
    assert re.search(r"^gunicorn==\d+\.\d+\.\d+$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert re.search(r"^COPY requirements\.txt \./$", DOCKERFILE, re.MULTILINE)
    assert '["gunicorn", "deepfake_site.wsgi"' in DOCKERFILE
    assert importlib.util.find_spec("deepfake_site.wsgi") is not None


def test_the_gpu_build_swaps_only_the_tensorflow_lines():
    pattern = re.search(r"grep -Ev '([^']+)' requirements\.txt", " ".join(_run_lines())).group(1)
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip()]

    removed = [line for line in lines if re.search(pattern, line)]

    assert [line.split(";")[0].strip() for line in removed] == ["tensorflow-cpu==2.21.0", "tensorflow==2.21.0"]
    assert COMPOSE["services"]["gpu-worker"]["build"]["args"]["TF_PACKAGE"].endswith("==2.21.0")


def test_the_dockerfiles_collectstatic_runs_for_real(tmp_path: Path):
    (collect,) = [line for line in _run_lines() if "collectstatic" in line]
    assert "DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput" in collect
    dockerfile_env = dict(re.findall(r"(DJANGO_STATIC_ROOT|UNMASK_VAR_DIR)=(\S+)", DOCKERFILE))
    assert dockerfile_env["DJANGO_STATIC_ROOT"] == _app_environment()["DJANGO_STATIC_ROOT"]
    static_root = tmp_path / "static"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("DJANGO_")}
    environment.update(DJANGO_SECRET_KEY="build-only", DJANGO_STATIC_ROOT=str(static_root))

    completed = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert (static_root / "admin" / "css" / "base.css").is_file()
    assert (static_root / "drf_spectacular_sidecar" / "swagger-ui-dist" / "swagger-ui-bundle.js").is_file()
    project_files = [path.relative_to(ROOT / "static") for path in (ROOT / "static").rglob("*") if path.is_file()]
    assert project_files and all((static_root / path).is_file() for path in project_files)


def test_the_image_leaves_local_state_and_secrets_out():
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert {".git", ".venv", "var", ".env"} <= set(ignored)


# --- deploy/healthcheck.py ---------------------------------------------------------------------------------------


def _healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unmask_healthcheck", ROOT / "deploy" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compose_health_checks_call_the_script():
    services = COMPOSE["services"]

    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py", "web"]
    for worker in ("worker", "gpu-worker", "webhook-worker"):
        assert services[worker]["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py", "worker"]


@pytest.mark.django_db(transaction=True)
def test_the_web_check_passes_against_a_running_server_and_fails_without_one(live_server, redis_conn, monkeypatch):
    healthcheck = _healthcheck_module()
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
    monkeypatch.setattr(healthcheck, "WEB_URL", live_server.url + reverse("api:health"))

    assert healthcheck.web_is_healthy() is True
    monkeypatch.setattr(healthcheck, "WEB_URL", f"http://127.0.0.1:{_free_port()}/api/v1/health/")
    assert healthcheck.web_is_healthy() is False


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/health", "https://127.0.0.1:8000/"])
def test_the_web_check_opens_nothing_but_plain_http(monkeypatch, capsys, url):
    healthcheck = _healthcheck_module()
    monkeypatch.setattr(healthcheck, "WEB_URL", url)

    assert healthcheck.web_is_healthy() is False
    assert f"web unhealthy: {url} is not an http:// URL" in capsys.readouterr().err


def test_the_worker_check_sees_only_a_registered_worker_of_this_host(redis_conn, monkeypatch, settings):
    from scans.worker import ScanWorker

    healthcheck = _healthcheck_module()
    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    worker = ScanWorker(["scans"], connection=redis_conn)

    assert healthcheck.worker_is_healthy() is False
    worker.register_birth()
    assert healthcheck.worker_is_healthy() is True
    worker.register_death()
    assert healthcheck.worker_is_healthy() is False
    assert healthcheck.main(["nonsense"]) == 2
