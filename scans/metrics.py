"""Prometheus metrics at /api/v1/metrics/ (staff only), in the text exposition format, written by hand.

Everything is read at scrape time from the database and Redis, so any web process can answer and nothing
has to be counted in memory: stored scans by status/verdict/kind, queue depth per RQ registry, live workers,
active model versions, and summaries (quantiles, sum, count) of the per-stage timings and the queue wait of
the most recent finished scans. Apps built on scans add their own families with `metric_source_register`
(the webhooks app: deliveries), so this module never imports them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

import django_rq
import redis
from django.db.models import Count, F
from django.http import HttpResponse
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from scans.heartbeats import live_worker_count
from scans.models import Scan
from scans.queues import job_queue_names
from training.models import ModelVersion

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.9, 0.99)
# Timings summaries cover this many of the most recently finished scans: enough for stable quantiles,
# little enough that a scrape stays a few milliseconds.
LATENCY_WINDOW = 1000
_REDIS_TIMEOUT_S = 2


class MetricFamily:
    """One metric's HELP/TYPE header and its samples, rendered in the Prometheus text format."""

    def __init__(self, name: str, metric_type: str, help_text: str) -> None:
        self.name = name
        self.metric_type = metric_type
        self.help_text = help_text
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def add(self, value: float, *, suffix: str = "", **labels: object) -> None:
        self.samples.append((self.name + suffix, {key: str(label) for key, label in labels.items()}, value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help_text)}", f"# TYPE {self.name} {self.metric_type}"]
        for sample_name, labels, value in self.samples:
            label_text = ",".join(f'{key}="{_escape_label(label)}"' for key, label in labels.items())
            lines.append(
                f"{sample_name}{{{label_text}}} {_format_value(value)}"
                if labels
                else f"{sample_name} {_format_value(value)}"
            )
        return "\n".join(lines) + "\n"


MetricSource = Callable[[], list[MetricFamily]]
_sources: list[MetricSource] = []


def metric_source_register(source: MetricSource) -> None:
    """Add a function whose metric families every scrape includes (an app calls this once, in `ready`)."""
    if source not in _sources:
        _sources.append(source)


def metrics_text() -> str:
    """The whole exposition: one family after another, ending with a newline."""
    families = [
        _scan_counts(),
        *_queue_metrics(),
        _active_models(),
        *_latency_summaries(),
        *(family for source in _sources for family in source()),
    ]
    return "".join(family.render() for family in families)


def _scan_counts() -> MetricFamily:
    family = MetricFamily("unmask_scans", "gauge", "Stored scans by status, verdict (empty until done) and kind.")
    rows = (
        Scan.objects.values("status", "verdict", "kind")
        .annotate(total=Count("id"))
        .order_by("status", "verdict", "kind")
    )
    for row in rows:
        family.add(row["total"], status=row["status"], verdict=row["verdict"], kind=row["kind"])
    return family


def _queue_metrics() -> list[MetricFamily]:
    up = MetricFamily("unmask_redis_up", "gauge", "1 when Redis answered this scrape, else 0.")
    jobs = MetricFamily("unmask_queue_jobs", "gauge", "RQ jobs per queue and state (queued = waiting for a worker).")
    workers = MetricFamily("unmask_workers", "gauge", "RQ workers on the queue with a fresh heartbeat.")
    # Every queue a job can wait on: scans (images and videos may be routed apart, e.g. videos to GPU workers)
    # and webhooks.
    queue_names = sorted(job_queue_names())
    try:
        for queue_name in queue_names:
            queue = django_rq.get_queue(queue_name)
            connection = queue.connection
            connection.ping()
            jobs.add(queue.count, queue=queue_name, state="queued")
            jobs.add(StartedJobRegistry(queue=queue).count, queue=queue_name, state="started")
            jobs.add(ScheduledJobRegistry(queue=queue).count, queue=queue_name, state="scheduled")
            jobs.add(FailedJobRegistry(queue=queue).count, queue=queue_name, state="failed")
            workers.add(live_worker_count(connection, queue_name), queue=queue_name)
        up.add(1)
    except redis.RedisError:
        up.add(0)
        return [up]
    return [up, jobs, workers]


def _active_models() -> MetricFamily:
    family = MetricFamily("unmask_model_active", "gauge", "The active model version of each kind (value always 1).")
    for version in ModelVersion.objects.filter(is_active=True).order_by("kind"):
        family.add(1, kind=version.kind, label=version.label)
    return family


def _latency_summaries() -> list[MetricFamily]:
    stages = MetricFamily(
        "unmask_scan_stage_seconds",
        "summary",
        f"Seconds per analysis stage (stored timings) over the last {LATENCY_WINDOW} finished scans, by kind.",
    )
    waits = MetricFamily(
        "unmask_scan_queue_wait_seconds",
        "summary",
        f"Seconds from upload to the start of analysis over the last {LATENCY_WINDOW} finished scans, by kind.",
    )
    recent = (
        Scan.objects.filter(status=Scan.Status.DONE, started_at__isnull=False)
        .order_by("-finished_at")
        .annotate(waited=F("started_at") - F("created_at"))
        .values_list("kind", "timings", "waited")[:LATENCY_WINDOW]
    )
    stage_values: dict[tuple[str, str], list[float]] = defaultdict(list)
    wait_values: dict[str, list[float]] = defaultdict(list)
    for kind, timings, waited in recent:
        for stage, seconds in (timings or {}).items():
            if isinstance(seconds, int | float) and math.isfinite(seconds):
                stage_values[(kind, stage.removesuffix("_s"))].append(float(seconds))
        if waited is not None:
            wait_values[kind].append(max(waited.total_seconds(), 0.0))
    for (kind, stage), values in sorted(stage_values.items()):
        _add_summary(stages, values, kind=kind, stage=stage)
    for kind, values in sorted(wait_values.items()):
        _add_summary(waits, values, kind=kind)
    return [stages, waits]


def _add_summary(family: MetricFamily, values: Iterable[float], **labels: str) -> None:
    ordered = sorted(values)
    for quantile in QUANTILES:
        family.add(_quantile(ordered, quantile), quantile=quantile, **labels)
    family.add(sum(ordered), suffix="_sum", **labels)
    family.add(len(ordered), suffix="_count", **labels)


def _quantile(ordered: list[float], quantile: float) -> float:
    """Nearest-rank quantile of sorted values."""
    rank = max(math.ceil(quantile * len(ordered)) - 1, 0)
    return ordered[rank]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class PrometheusTextRenderer(BaseRenderer):
    """Lets a scraper that asks for text/plain through DRF's content negotiation (errors render as text too)."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(
        self, data: object, accepted_media_type: str | None = None, renderer_context: dict | None = None
    ) -> bytes:
        if isinstance(data, dict) and "detail" in data:
            return f"{data['detail']}\n".encode()
        return str(data).encode()


class MetricsApi(APIView):
    """GET: the metrics, for staff users only (session, or `Authorization: Token <key>` from a scraper)."""

    permission_classes = [IsAdminUser]
    renderer_classes = [PrometheusTextRenderer]

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(metrics_text(), content_type=CONTENT_TYPE)
