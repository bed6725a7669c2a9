"""Forms for configs: the engine's rules run in the models' `clean`, so these only choose the fields."""

from __future__ import annotations

from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.forms import OwnedModelForm


class FeatureConfigForm(OwnedModelForm):
    """Create or change a feature config (the engine's rules run in the model's clean)."""

    class Meta:
        model = FeatureConfig
        fields = ["name", "description", "buyer_features", "product_features", "target_column", "target_transform"]


class ModelConfigForm(OwnedModelForm):
    """Create or change a model config (the engine's rules run in the model's clean)."""

    class Meta:
        model = ModelConfig
        fields = [
            "name",
            "description",
            "model_type",
            "buyer_tower_layers",
            "product_tower_layers",
            "rating_head_layers",
            "output_embedding_dim",
            "retrieval_weight",
            "ranking_weight",
            "loss_function",
            "retrieval_algorithm",
            "top_k",
            "optimizer",
            "learning_rate",
            "batch_size",
            "epochs",
            "options",
        ]

    def clean(self) -> dict:
        # A form JSONField reads [] and {} as "empty" (None); here they are meaningful values.
        cleaned = super().clean()
        for field in ("buyer_tower_layers", "product_tower_layers", "rating_head_layers"):
            if field in cleaned and cleaned[field] is None:
                cleaned[field] = []
        if "options" in cleaned and cleaned["options"] is None:
            cleaned["options"] = {}
        return cleaned
