"""Admin for deployments (read-only: the platform starts and stops the servers)."""

from django.contrib import admin

from tandem.web.deployments.models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("experiment", "organisation", "status", "host", "port", "pid", "started_at", "stopped_at")
    list_filter = ("organisation", "status")
    readonly_fields = ("experiment", "organisation", "bundle", "host", "port", "pid", "status", "started_at",
                       "stopped_at", "error")  # fmt: skip
