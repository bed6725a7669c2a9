"""Configs become the spec's own sections: the old columns are folded into `features`, `model` and `training`."""

from django.db import migrations, models

import tandem.web.configs.models

_MODEL_COLUMNS = {  # old column → key of the model section
    "model_type": "type",
    "rating_head_layers": "rating_head_layers",
    "retrieval_weight": "retrieval_weight",
    "ranking_weight": "ranking_weight",
    "loss_function": "ranking_loss",
    "retrieval_algorithm": "retrieval_algorithm",
}
_TRAINING_COLUMNS = ("optimizer", "learning_rate", "batch_size", "epochs")
_OLD_MODEL_COLUMNS = (
    *(column for column in _MODEL_COLUMNS if column != "model_type"),
    *_TRAINING_COLUMNS,
    "buyer_tower_layers",
    "product_tower_layers",
    "output_embedding_dim",
    "top_k",
    "options",
)


def _sections(apps, schema_editor):
    for config in apps.get_model("configs", "FeatureConfig").objects.all():
        config.features = {
            "buyer": config.buyer_features,
            "product": config.product_features,
            "target": config.target_column or None,
            "target_transform": config.target_transform,
        }
        config.save(update_fields=["features"])
    for config in apps.get_model("configs", "ModelConfig").objects.all():
        options = config.options if isinstance(config.options, dict) else {}
        model = {**options.get("model", {}), **{key: getattr(config, col) for col, key in _MODEL_COLUMNS.items()}}
        out = [config.output_embedding_dim] if config.output_embedding_dim else []
        model["buyer_tower_layers"] = [*config.buyer_tower_layers, *out]
        model["product_tower_layers"] = [*config.product_tower_layers, *out]
        model["index"] = {**model.get("index", {}), "candidate_pool": config.top_k}
        config.model = model
        config.training = {**options.get("training", {}), **{col: getattr(config, col) for col in _TRAINING_COLUMNS}}
        config.save(update_fields=["model", "training"])


def _columns(apps, schema_editor):
    for config in apps.get_model("configs", "FeatureConfig").objects.all():
        f = config.features
        config.buyer_features, config.product_features = f.get("buyer", []), f.get("product", [])
        config.target_column, config.target_transform = f.get("target") or "", f.get("target_transform", "none")
        config.save()
    for config in apps.get_model("configs", "ModelConfig").objects.all():
        model, training = dict(config.model), dict(config.training)
        for col, key in _MODEL_COLUMNS.items():
            if key in model:
                setattr(config, col, model.pop(key))
        config.buyer_tower_layers = model.pop("buyer_tower_layers", [])
        config.product_tower_layers = model.pop("product_tower_layers", [])
        config.top_k = dict(model.get("index", {})).get("candidate_pool", 100)
        for col in _TRAINING_COLUMNS:
            if col in training:
                setattr(config, col, training.pop(col))
        config.options = {"model": model, "training": training}
        config.save()


class Migration(migrations.Migration):
    dependencies = [("configs", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="featureconfig",
            name="features",
            field=models.JSONField(
                blank=True, default=dict, help_text="The spec's features section.", verbose_name="features"
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="modelconfig",
            name="model",
            field=models.JSONField(
                blank=True,
                default=tandem.web.configs.models.default_model,
                help_text="The spec's model section.",
                verbose_name="model",
            ),
        ),
        migrations.AddField(
            model_name="modelconfig",
            name="training",
            field=models.JSONField(
                blank=True,
                default=tandem.web.configs.models.default_training,
                help_text="The spec's training section.",
                verbose_name="training",
            ),
        ),
        migrations.RunPython(_sections, _columns),
        *[
            migrations.RemoveField(model_name="featureconfig", name=name)
            for name in ("buyer_features", "product_features", "target_column", "target_transform")
        ],
        *[migrations.RemoveField(model_name="modelconfig", name=name) for name in _OLD_MODEL_COLUMNS],
        migrations.AlterField(
            model_name="modelconfig",
            name="model_type",
            field=models.CharField(
                choices=[("retrieval", "Retrieval"), ("ranking", "Ranking"), ("multitask", "Multitask")],
                db_index=True,
                editable=False,
                max_length=20,
                verbose_name="model type",
            ),
        ),
    ]
