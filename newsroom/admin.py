"""Teams, their cases and the audit log in the Django admin (staff only), and the reviewed-scan figures of model
versions."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from newsroom.evaluation import REVIEWED_SECTION, reviewed_scan_metrics
from newsroom.models import AuditEvent, Case, Membership, Team
from training.admin import ModelVersionAdmin
from training.models import ModelVersion
from training.selectors import MetricComparison


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name", "memberships__user__username"]
    inlines = [MembershipInline]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["title", "team", "status", "created_by", "created_at"]
    list_filter = ["status"]
    search_fields = ["title", "team__name"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The whole audit log, every team's and personal scans' alike; read-only (the log is append-only)."""

    list_display = ["created_at", "actor_name", "action", "scan_name", "team"]
    list_filter = ["action"]
    search_fields = ["actor_name", "scan_name", "scan_reference", "team__name"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "actor", "actor_name", "action", "team", "scan_reference", "scan_name", "detail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


# The model comparison gains the scans reviewers labelled as evaluation data (newsroom sits above training, so it
# extends the training admin rather than the other way round).
admin.site.unregister(ModelVersion)


@admin.register(ModelVersion)
class ReviewedModelVersionAdmin(ModelVersionAdmin):
    """The model-version admin, with each version's figures on reviewed scans, also in its comparison with the
    active version and in the activation warning."""

    fields = [
        *ModelVersionAdmin.fields[: ModelVersionAdmin.fields.index("comparison_with_active")],
        "reviewed_scans",
        *ModelVersionAdmin.fields[ModelVersionAdmin.fields.index("comparison_with_active") :],
    ]
    readonly_fields = [field for field in fields if field != "training_notes"]

    def comparison_rows(self, *, model_version: ModelVersion, active: ModelVersion) -> list[MetricComparison]:
        rows = super().comparison_rows(model_version=model_version, active=active)
        candidate = reviewed_scan_metrics(model_version=model_version)
        current = reviewed_scan_metrics(model_version=active)
        rows += [
            MetricComparison(
                section=REVIEWED_SECTION, metric=metric, active=current[metric], candidate=candidate[metric]
            )
            for metric in REVIEWED_METRICS
            if candidate["n"] and current["n"] and candidate[metric] is not None and current[metric] is not None
        ]
        return rows

    @admin.display(description="reviewed scans")
    def reviewed_scans(self, model_version: ModelVersion) -> str:
        figures = reviewed_scan_metrics(model_version=model_version)
        if not figures["n"]:
            return "No scan this version scored has been confirmed fake or real by a reviewer yet."
        return format_html(
            "<p>{} labelled scans ({} confirmed fake, {} confirmed real; {} scored in shadow mode), at the threshold "
            "{}:</p><table><tbody><tr><th>ROC-AUC</th><td>{}</td></tr><tr><th>accuracy</th><td>{}</td></tr>"
            "<tr><th>false-positive rate</th><td>{}</td></tr></tbody></table>",
            figures["n"],
            figures["n_fake"],
            figures["n_real"],
            figures["from_shadow"],
            f"{figures['threshold']:.3g}",
            _figure(figures["auc"], "needs both confirmed fakes and confirmed reals"),
            _figure(figures["accuracy"]),
            _figure(figures["false_positive_rate"], "no confirmed real scan"),
        )


REVIEWED_METRICS = ("n", "auc", "accuracy", "false_positive_rate")


def _figure(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{value:.4f}"
