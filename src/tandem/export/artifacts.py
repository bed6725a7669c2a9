"""Saving and loading a trained model with its fitted features, so it can be evaluated or served later.

Layout of a model folder:
  spec.yaml        the resolved experiment spec
  features.json    the fitted buyer and product pipelines (vocabularies, scalers, ...)
  model.pt         the model's weights (a plain state dict)
  catalog.parquet  one row per product: its id and raw feature values
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from tandem.features.pipeline import TowerFeatures
from tandem.models.two_tower import TwoTowerModel
from tandem.spec import ExperimentSpec, parse_spec


@dataclass
class TrainedModel:
    """A model with the pipelines that turn raw buyer and product values into its inputs."""

    spec: ExperimentSpec
    model: TwoTowerModel
    buyer_features: TowerFeatures
    product_features: TowerFeatures
    catalog: pd.DataFrame

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "spec.yaml").write_text(self.spec.to_yaml(), encoding="utf-8")
        features = {"buyer": self.buyer_features.get_state(), "product": self.product_features.get_state()}
        (folder / "features.json").write_text(json.dumps(features), encoding="utf-8")
        torch.save(self.model.state_dict(), folder / "model.pt")
        self.catalog.to_parquet(folder / "catalog.parquet", index=False)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TrainedModel:
        import yaml

        folder = Path(folder)
        spec = parse_spec(yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8")))
        features = json.loads((folder / "features.json").read_text(encoding="utf-8"))
        buyer = TowerFeatures.from_state(features["buyer"])
        product = TowerFeatures.from_state(features["product"])
        model = TwoTowerModel(spec.model, buyer.inputs(), product.inputs(), sparse=spec.training.sparse_embeddings)
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        model.eval()
        return cls(spec, model, buyer, product, pd.read_parquet(folder / "catalog.parquet"))
