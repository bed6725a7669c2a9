"""Admin for datasets (files and profiles read-only)."""

from django.contrib import admin

from tandem.web.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation", "buyer_id_column", "product_id_column", "row_count", "created_at")
    list_filter = ("organisation",)
    search_fields = ("name", "description")
    readonly_fields = ("transactions_file", "buyers_file", "products_file", "original_names", "profile", "size_bytes")
