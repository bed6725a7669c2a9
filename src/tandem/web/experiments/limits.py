"""The budgets an experiment meets before it is queued: its model's size, and the organisation's queue.

The model's parameters and training memory are bounded from the spec and the dataset's profile (distinct values
of each column) by :func:`tandem.sizing.estimate`, so a config that would need more than a worker has is refused
with the figure and the limit while the person is still at the form, not after a worker ran out of memory.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from tandem import sizing
from tandem.spec import ExperimentSpec
from tandem.web import budgets
from tandem.web.accounts.models import Organisation
from tandem.web.datasets.models import ROLES, Dataset
from tandem.web.experiments.models import ACTIVE, Experiment


def distinct_values(dataset: Dataset) -> dict[str, int]:
    """Column → distinct values over the dataset's files; columns made by aggregation count as its rows."""
    out = {a["name"]: dataset.row_count for a in dataset.aggregate or [] if isinstance(a, dict) and a.get("name")}
    for role in ROLES:
        for column in (dataset.profile.get(role) or {}).get("columns", []):
            out[column["name"]] = max(out.get(column["name"], 0), int(column.get("distinct") or 0))
    return out


def check_model_size(organisation: Organisation, dataset: Dataset, spec: ExperimentSpec) -> None:
    """Raise ValidationError (field model_config) when the model's parameters or training memory pass the
    organisation's `parameters` or `training_memory_bytes` budget."""
    size = sizing.estimate(spec, distinct_values(dataset))
    errors = []
    for name, value, what in (
        ("parameters", size.parameters, "parameters"),
        ("training_memory_bytes", size.training_bytes, "estimated training memory"),
    ):
        cap = budgets.limit(organisation, name)
        if value > cap:
            errors.append(
                ValidationError(
                    f"The model would have {budgets.figure(value, name)} {what} on dataset “{dataset.name}”; the "
                    f"limit ({name}) is {budgets.figure(cap, name)}. Use smaller embeddings, layers, vocabularies "
                    "(max_vocab, num_bins, max_tokens) or batches.",
                    code="over_budget",
                )
            )
    if errors:
        raise ValidationError({"model_config": errors})


def check_queue(organisation: Organisation) -> None:
    """Raise OverBudget (429) when the organisation already has `queued_experiments` pending or running."""
    active = Experiment.objects.of(organisation).filter(status__in=ACTIVE).count()
    cap = budgets.limit(organisation, "queued_experiments")
    if active >= cap:
        raise budgets.OverBudget(
            "queued_experiments",
            f"Your organisation has {active} experiments pending or running; the limit (queued_experiments) is "
            f"{cap}. Wait for one to finish or cancel one.",
        )
