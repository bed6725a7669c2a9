"""A spec checked against its data before any training: the data read, cleaned and split, the feature transforms
fitted, and the rules that need the catalog applied.

Nothing here imports the training stack (torch) unless the spec asks for a GPU, so `tandem validate` answers in
about a second; training runs the same checks first (`tandem.run.prepare`).
"""

from __future__ import annotations

from tandem.data.prepare import PRODUCT, Interactions, load_interactions
from tandem.errors import Problem, SpecError
from tandem.experiment_rules import DataFacts, check_experiment
from tandem.features.pipeline import TowerFeatures, fit_features
from tandem.spec import ExperimentSpec


def check_device(spec: ExperimentSpec) -> None:
    """A CUDA device must exist on this machine (torch is imported only to ask)."""
    device = spec.training.device
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise SpecError([Problem("training.device", f"'{device}' was asked for, but this machine has no CUDA GPU")])


def check_catalog(spec: ExperimentSpec, n_products: int) -> None:
    """The experiment rules that need the catalog: top-K and the evaluation cut-offs must fit in it."""
    problems = check_experiment(spec, DataFacts(n_products=n_products))
    if problems:
        raise SpecError(problems)


def check_data(
    spec: ExperimentSpec, interactions: Interactions | None = None
) -> tuple[Interactions, TowerFeatures, TowerFeatures]:
    """The spec's interactions and the fitted (buyer, product) pipelines, once every check has passed.

    Raises SpecError (every problem with the spec or its data) or DataError (an unreadable file).
    """
    check_device(spec)
    interactions = interactions or load_interactions(spec)
    buyer, product = fit_features(spec, interactions)
    check_catalog(spec, int(interactions.frame[PRODUCT].nunique()))
    return interactions, buyer, product
