"""Admin for configs: the forms are generated from the spec sections, like every other config form."""

from django.contrib import admin

from tandem.web.configs.forms import FeatureConfigAdminForm, ModelConfigAdminForm
from tandem.web.configs.models import FeatureConfig, ModelConfig


@admin.register(FeatureConfig)
class FeatureConfigAdmin(admin.ModelAdmin):
    form = FeatureConfigAdminForm
    list_display = ("name", "organisation", "updated_at")
    list_filter = ("organisation",)
    search_fields = ("name", "description")


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    form = ModelConfigAdminForm
    list_display = ("name", "organisation", "model_type", "updated_at")
    list_filter = ("organisation", "model_type")
    search_fields = ("name", "description")
