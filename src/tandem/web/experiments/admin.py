"""Admin for experiments (results read-only: the worker writes them)."""

from django.contrib import admin

from tandem.web.experiments.models import METRIC_FIELDS, Experiment


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "organisation",
        "model_type",
        "status",
        "current_epoch",
        "recall_at_100",
        "rmse",
        "created_at",
    )
    list_filter = ("organisation", "status", "model_type")
    search_fields = ("name", "description")
    readonly_fields = (
        "model_type", "spec", "status", "attempt", "task_id", "worker", "queued_at", "started_at", "finished_at",
        "heartbeat_at", "current_epoch", "total_epochs", "progress", "history", "weight_stats", "data_report", "notes",
        *METRIC_FIELDS, "other_metrics", "error", "artifacts_dir", "mlflow_run_id",
    )  # fmt: skip
