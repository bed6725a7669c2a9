"""Admin for configs."""

from django.contrib import admin

from tandem.web.configs.models import FeatureConfig, ModelConfig


@admin.register(FeatureConfig)
class FeatureConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation", "target_column", "updated_at")
    list_filter = ("organisation",)
    search_fields = ("name", "description")


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation", "model_type", "retrieval_weight", "ranking_weight", "epochs", "updated_at")
    list_filter = ("organisation", "model_type")
    search_fields = ("name", "description")
    fieldsets = (
        (None, {"fields": ("organisation", "name", "description", "model_type")}),
        ("Towers", {"fields": ("buyer_tower_layers", "product_tower_layers", "output_embedding_dim", "rating_head_layers")}),
        ("Losses and retrieval", {"fields": ("retrieval_weight", "ranking_weight", "loss_function", "retrieval_algorithm", "top_k")}),
        ("Training", {"fields": ("optimizer", "learning_rate", "batch_size", "epochs", "options")}),
    )  # fmt: skip
