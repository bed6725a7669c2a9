"""Admin for deployments (read-only: the platform starts and stops the servers)."""

from django.contrib import admin
from django.http import HttpRequest

from tandem.web.deployments.models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("experiment", "organisation", "status", "host", "port", "pid", "started_at", "stopped_at")
    list_filter = ("organisation", "status")
    readonly_fields = ("experiment", "organisation", "bundle", "host", "port", "pid", "status", "started_at",
                       "stopped_at", "error")  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a row without its process would only mislead
