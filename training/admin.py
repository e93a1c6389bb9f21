"""Admin for model versions: upload new weights, inspect metrics and plots, compare with the active one,
activate or roll back, and run a candidate in shadow mode.

Everything that defines a registered version (weights, settings, metrics) is read-only; a new version comes
in through the add form, which stores it with `model_version_register` (never activated on upload). The
active version changes only through the "activate" and "roll back" actions, which go through
`model_version_activate`, so the previous active version of the kind is deactivated in the same transaction.
Shadow mode (see `scans.shadow`) is switched by the "shadow" actions; a version's page then reports how its
verdicts on new scans agree with the ones users were shown, and `ShadowResult` rows list them one by one.
"""

from __future__ import annotations

import json
import mimetypes
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from training.models import ModelVersion, ShadowResult
from training.selectors import (
    COMPARED_METRICS,
    MetricComparison,
    is_number,
    metric_sections,
    model_version_active,
    model_version_comparison,
    model_version_plots,
    previous_active_version,
    shadow_agreement,
    shadow_disagreements,
)
from training.services import (
    ShadowRefused,
    model_version_activate,
    model_version_plot_store,
    model_version_register,
    model_version_shadow_start,
    model_version_shadow_stop,
)

PLOT_TITLES = {
    "roc.png": "ROC curve",
    "confusion.png": "Confusion matrix",
    "pr.png": "Precision-recall",
    "training.png": "Training curves",
}

# Disagreements listed on a version's page; the full list is the ShadowResult changelist it links to.
SHADOW_DISAGREEMENTS_SHOWN = 20
VERDICT_ORDER = ("real", "uncertain", "fake", "no_face")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ModelVersionUploadForm(forms.ModelForm):
    """A new version: its .keras weights, the settings inference needs, optional metrics and plots."""

    roc_plot = forms.FileField(required=False, label="ROC curve (PNG)")
    confusion_plot = forms.FileField(required=False, label="Confusion matrix (PNG)")

    class Meta:
        model = ModelVersion
        fields = ["kind", "name", "version", "weights", "settings", "metrics", "training_notes"]
        help_texts = {
            "weights": "A Keras 3 .keras file saved by the training commands.",
            "settings": 'JSON object; needs "threshold" (and may give "uncertain_low" <= threshold <= '
            '"uncertain_high", "crop_rule", "calibration"), as the training commands write it.',
            "metrics": 'Optional JSON, e.g. {"evaluate:val": {"auc": 0.97, "accuracy": 0.93, ...}}.',
        }

    def clean_weights(self) -> UploadedFile:
        weights = self.cleaned_data["weights"]
        if not weights.name.lower().endswith(".keras"):
            raise forms.ValidationError("Upload a .keras file.")
        try:
            with zipfile.ZipFile(weights) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise forms.ValidationError("This is not a Keras 3 .keras file (not a zip archive).") from None
        finally:
            weights.seek(0)
        if "config.json" not in names:
            raise forms.ValidationError("This .keras file has no config.json, so Keras could not load it.")
        return weights

    def clean_settings(self) -> dict:
        settings = self.cleaned_data["settings"]
        if not isinstance(settings, dict):
            raise forms.ValidationError("Settings must be a JSON object.")
        threshold = settings.get("threshold")
        if not is_number(threshold) or not 0.0 <= threshold <= 1.0:
            raise forms.ValidationError('Settings need a "threshold" between 0 and 1.')
        low = settings.get("uncertain_low", threshold)
        high = settings.get("uncertain_high", threshold)
        if not (is_number(low) and is_number(high) and 0.0 <= low <= threshold <= high <= 1.0):
            raise forms.ValidationError('Need 0 <= "uncertain_low" <= "threshold" <= "uncertain_high" <= 1.')
        return settings

    def clean_metrics(self) -> dict:
        metrics = self.cleaned_data.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise forms.ValidationError("Metrics must be a JSON object.")
        return metrics

    def _clean_plot(self, field_name: str) -> UploadedFile | None:
        plot = self.cleaned_data.get(field_name)
        if plot is None:
            return None
        head = plot.read(len(_PNG_MAGIC))
        plot.seek(0)
        if head != _PNG_MAGIC:
            raise forms.ValidationError("Upload a PNG image.")
        return plot

    def clean_roc_plot(self) -> UploadedFile | None:
        return self._clean_plot("roc_plot")

    def clean_confusion_plot(self) -> UploadedFile | None:
        return self._clean_plot("confusion_plot")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """List, upload, inspect, compare, activate and roll back model versions (see the module docstring)."""

    list_display = [
        "kind",
        "name",
        "version",
        "is_active",
        "is_shadow",
        "metrics_summary",
        "created_at",
        "activated_at",
    ]
    list_filter = ["kind", "is_active", "is_shadow"]
    search_fields = ["name", "version", "training_notes"]
    ordering = ["kind", "-created_at"]
    actions = ["activate", "roll_back", "start_shadow", "stop_shadow"]
    fields = [
        "kind",
        "name",
        "version",
        "is_active",
        "activated_at",
        "is_shadow",
        "shadow_since",
        "shadow_report",
        "created_at",
        "weights",
        "weights_sha256",
        "plots",
        "comparison_with_active",
        "metrics_pretty",
        "settings_pretty",
        "training_notes",
    ]
    readonly_fields = [field for field in fields if field != "training_notes"]
    add_fields = [*ModelVersionUploadForm.Meta.fields, "roc_plot", "confusion_plot"]

    def get_fields(self, request: HttpRequest, obj: ModelVersion | None = None) -> list[str]:
        return list(self.add_fields) if obj is None else list(self.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: ModelVersion | None = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def get_form(self, request: HttpRequest, obj: ModelVersion | None = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = ModelVersionUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: ModelVersion, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        with tempfile.TemporaryDirectory(prefix="unmask-admin-upload-") as directory:
            weights_path = Path(directory) / "weights.keras"
            with weights_path.open("wb") as handle:
                for chunk in data["weights"].chunks():
                    handle.write(chunk)
            registered = model_version_register(
                kind=data["kind"],
                name=data["name"],
                version=data["version"],
                weights_path=weights_path,
                settings=data["settings"],
                metrics=data.get("metrics") or {},
                training_notes=data.get("training_notes", ""),
            )
        for field_name, plot_name in (("roc_plot", "roc.png"), ("confusion_plot", "confusion.png")):
            if data.get(field_name) is not None:
                model_version_plot_store(model_version=registered, plot_name=plot_name, plot=data[field_name])
        # The admin logs and redirects to the object it was given (kind, name, version already match): point it at
        # the registered row.
        obj.pk = registered.pk
        obj._state.adding = False

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:version_id>/plot/<str:plot_name>",
                self.admin_site.admin_view(self.plot_view),
                name="training_modelversion_plot",
            )
        ]
        return extra + super().get_urls()

    def plot_view(self, request: HttpRequest, version_id: int, plot_name: str) -> FileResponse:
        """Streams one plot of a version to staff who may view versions."""
        if not self.has_view_permission(request) or plot_name not in PLOT_TITLES:
            raise Http404("No such plot.")
        model_version = ModelVersion.objects.filter(pk=version_id).first()
        plot_path = model_version_plots(model_version).get(plot_name) if model_version else None
        if plot_path is None:
            raise Http404("No such plot.")
        response = FileResponse(plot_path.open("rb"), content_type=mimetypes.types_map[".png"])
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=300"
        return response

    @admin.action(description="Activate the selected version (one per kind)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> TemplateResponse | None:
        """Asks first (an intermediate page), with a warning for each selected version the comparison with
        the active one marks worse on some metric; activates on the confirming POST."""
        selected = list(queryset)
        per_kind = Counter(model_version.kind for model_version in selected)
        crowded = sorted(kind for kind, count in per_kind.items() if count > 1)
        if crowded:
            self.message_user(
                request,
                f"Only one version per kind can be active; select a single {' and a single '.join(crowded)} version.",
                level=messages.ERROR,
            )
            return None
        if request.POST.get("confirm") != "yes":
            return self._activation_confirmation(request, selected)
        for model_version in selected:
            model_version_activate(model_version=model_version)
            self.message_user(request, f"{model_version} is now the active {model_version.kind} model.")
        return None

    def _activation_confirmation(self, request: HttpRequest, selected: list[ModelVersion]) -> TemplateResponse:
        candidates = []
        for model_version in selected:
            active = model_version_active(kind=model_version.kind)
            comparison = (
                []
                if active is None or active.pk == model_version.pk
                else self.comparison_rows(model_version=model_version, active=active)
            )
            candidates.append(
                {
                    "version": model_version,
                    "active": active,
                    "worse": [row for row in comparison if row.better is False],
                    "better": [row for row in comparison if row.better is True],
                    "compared": bool(comparison),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Activate this model version?",
            "opts": self.model._meta,
            "candidates": candidates,
            "any_worse": any(candidate["worse"] for candidate in candidates),
            "selected_ids": [model_version.pk for model_version in selected],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/training/modelversion/activate_confirmation.html", context)

    @admin.action(description="Roll back: reactivate the previously active version of the selected kinds")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            previous = previous_active_version(kind=kind)
            if previous is None:
                self.message_user(request, f"No earlier {kind} version was ever active.", level=messages.WARNING)
                continue
            model_version_activate(model_version=previous)
            self.message_user(request, f"Rolled back: {previous} is the active {kind} model again.")

    @admin.action(description="Shadow mode: run the selected version on new scans, unseen by users (one per kind)")
    def start_shadow(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        selected = list(queryset)
        crowded = sorted(kind for kind, count in Counter(version.kind for version in selected).items() if count > 1)
        if crowded:
            self.message_user(
                request,
                f"Only one version per kind can be in shadow mode; select a single {' and a single '.join(crowded)} "
                "version.",
                level=messages.ERROR,
            )
            return
        for model_version in selected:
            try:
                model_version_shadow_start(model_version=model_version)
            except ShadowRefused as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            self.message_user(
                request,
                f"{model_version} now scores every new {model_version.kind} scan in shadow mode; users never see it.",
            )

    @admin.action(description="Shadow mode: stop it for the kinds of the selected versions")
    def stop_shadow(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            stopped = model_version_shadow_stop(kind=kind)
            if stopped is None:
                self.message_user(request, f"No {kind} version was in shadow mode.", level=messages.WARNING)
            else:
                self.message_user(request, f"Shadow mode stopped for {stopped}; its results are kept.")

    @admin.display(description="shadow mode: agreement with the verdicts users saw")
    def shadow_report(self, model_version: ModelVersion) -> str:
        agreement = shadow_agreement(candidate=model_version)
        if agreement.scored + agreement.failed == 0:
            if model_version.is_shadow:
                return f"In shadow mode; no new {model_version.kind} scan with a face has finished since."
            return "Never run in shadow mode."
        summary = format_html(
            "<p>{} scans compared: verdicts agree on <strong>{}</strong> ({} of {}); mean |change of fake "
            "probability| {}; {} shadow runs failed.</p>",
            agreement.scored,
            "-" if agreement.agreement is None else f"{100 * agreement.agreement:.1f}%",
            agreement.agreed,
            agreement.scored,
            "-" if agreement.mean_abs_probability_change is None else f"{agreement.mean_abs_probability_change:.4f}",
            agreement.failed,
        )
        verdicts = [verdict for verdict in VERDICT_ORDER if any(verdict in pair for pair in agreement.verdict_pairs)]
        pairs_table = ""
        if verdicts:
            header = format_html_join("", "<th>{} (this)</th>", ((verdict,) for verdict in verdicts))
            rows = format_html_join(
                "",
                "<tr><th>{} (shown)</th>{}</tr>",
                (
                    (
                        shown,
                        format_html_join(
                            "",
                            "<td>{}</td>",
                            ((agreement.verdict_pairs.get((shown, mine), 0),) for mine in verdicts),
                        ),
                    )
                    for shown in verdicts
                ),
            )
            pairs_table = format_html(
                "<table><thead><tr><th></th>{}</tr></thead><tbody>{}</tbody></table>", header, rows
            )
        disagreements = list(shadow_disagreements(candidate=model_version)[:SHADOW_DISAGREEMENTS_SHOWN])
        listing = ""
        if disagreements:
            items = format_html_join(
                "",
                '<li><a href="{}">scan {}</a>: shown {} ({}), this version {} ({})</li>',
                (
                    (
                        reverse("admin:scans_scan_change", args=[result.scan_id]),
                        result.scan_id,
                        result.reference_verdict,
                        _probability(result.reference_probability),
                        result.verdict,
                        _probability(result.fake_probability),
                    )
                    for result in disagreements
                ),
            )
            all_url = (
                reverse("admin:training_shadowresult_changelist")
                + "?"
                + urlencode({"candidate__id__exact": model_version.pk, "agreed__exact": 0})
            )
            listing = format_html(
                '<p>Disagreements, newest first:</p><ul>{}</ul><p><a href="{}">All disagreements</a></p>',
                items,
                all_url,
            )
        return format_html("{}{}{}", summary, pairs_table, listing)

    @admin.display(description="metrics")
    def metrics_summary(self, model_version: ModelVersion) -> str:
        sections = metric_sections(model_version.metrics)
        if not sections:
            return "-"
        # Flat metrics first; else an evaluation on held-out data; else the training run's own numbers.
        preferred = sorted(sections, key=lambda name: (name != "", not name.startswith("evaluate:"), name))[0]
        numbers = {name: value for name, value in sections[preferred].items() if name in COMPARED_METRICS}
        numbers = numbers or sections[preferred]
        return ", ".join(f"{name}={value:.3g}" for name, value in sorted(numbers.items())[:4])

    @admin.display(description="plots")
    def plots(self, model_version: ModelVersion) -> str:
        found = model_version_plots(model_version)
        if not found:
            return "No plots stored for this version."
        return format_html_join(
            "",
            '<figure style="display:inline-block;margin:0 1rem 1rem 0"><img src="{}" alt="{}" width="320">'
            "<figcaption>{}</figcaption></figure>",
            (
                (
                    reverse("admin:training_modelversion_plot", args=[model_version.pk, plot_name]),
                    PLOT_TITLES[plot_name],
                    PLOT_TITLES[plot_name],
                )
                for plot_name in found
            ),
        )

    def comparison_rows(self, *, model_version: ModelVersion, active: ModelVersion) -> list[MetricComparison]:
        """What the comparison table and the activation warning compare: the evaluations both versions recorded (an
        admin higher up, newsroom's, adds the scans reviewers labelled)."""
        return model_version_comparison(model_version=model_version, active=active)

    @admin.display(description="compared with the active version")
    def comparison_with_active(self, model_version: ModelVersion) -> str:
        active = model_version_active(kind=model_version.kind)
        if active is None:
            return f"No {model_version.kind} version is active."
        if active.pk == model_version.pk:
            return "This is the active version."
        rows = [
            (row.section or "-", row.metric, _number(row.active), _number(row.candidate), _change(row))
            for row in self.comparison_rows(model_version=model_version, active=active)
        ]
        if not rows:
            return f"{active.label} (active) has no metrics on the same evaluation data as this version."
        header = format_html(
            "<thead><tr><th>evaluation</th><th>metric</th><th>{} (active)</th><th>{} (this)</th><th>change</th>"
            "</tr></thead>",
            active.label,
            model_version.label,
        )
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table>{}<tbody>{}</tbody></table>", header, body)

    @admin.display(description="metrics")
    def metrics_pretty(self, model_version: ModelVersion) -> str:
        return _pretty_json(model_version.metrics)

    @admin.display(description="settings")
    def settings_pretty(self, model_version: ModelVersion) -> str:
        return _pretty_json(model_version.settings)


@admin.register(ShadowResult)
class ShadowResultAdmin(admin.ModelAdmin):
    """Shadow runs one by one, read-only: written by workers, summarised on each version's page."""

    list_display = [
        "created_at",
        "candidate",
        "scan_link",
        "reference_verdict",
        "reference_probability",
        "verdict",
        "fake_probability",
        "agreed",
        "error",
    ]
    list_filter = ["candidate", "kind", "agreed"]
    list_select_related = ["candidate"]
    ordering = ["-created_at"]
    readonly_fields = [
        "scan_link",
        "candidate",
        "reference",
        "kind",
        "reference_verdict",
        "reference_probability",
        "verdict",
        "fake_probability",
        "agreed",
        "faces_scored",
        "timings",
        "error",
        "created_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ShadowResult | None = None) -> bool:
        return False

    @admin.display(description="scan")
    def scan_link(self, shadow_result: ShadowResult) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:scans_scan_change", args=[shadow_result.scan_id]),
            shadow_result.scan_id,
        )


def _probability(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _change(row: MetricComparison) -> str:
    if row.change == 0:
        return "same"
    if row.better is None:
        return f"{row.change:+g}"
    return f"{row.change:+.4f} ({'better' if row.better else 'worse'})"


# Lists longer than this (per-video rows, training curves) are summarised in the tables, not spelled out.
_TABLE_LIST_ITEMS = 8


def _pretty_json(value: object) -> str:
    """A version's metrics or settings as a table of dotted keys and values (nested sections flattened)."""
    rows = list(_flattened(value))
    if not rows:
        return "-"
    body = format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows)
    return format_html('<table class="model-version-table"><tbody>{}</tbody></table>', body)


def _flattened(value: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _flattened(value[key], f"{prefix}.{key}" if prefix else str(key))
        return
    if isinstance(value, list) and (
        len(value) > _TABLE_LIST_ITEMS or any(isinstance(item, dict | list) for item in value)
    ):
        yield prefix, f"{len(value)} item{'' if len(value) == 1 else 's'}"
        return
    if isinstance(value, float):
        yield prefix, f"{value:.6g}"
        return
    yield prefix, value if isinstance(value, str) else json.dumps(value)
