"""The "tune this" form: what to search and for what; the service checks it all against the spec."""

from __future__ import annotations

from django import forms

from tandem.study.search import PRUNERS, SAMPLERS
from tandem.web.experiments.models import Experiment
from tandem.web.studies.models import MAX_PARALLELISM, MAX_TRIALS

# What a study of each model type searches first: the multitask trade-off, else the learning rate.
SUGGESTED = {
    "multitask": (["model.retrieval_weight=0:2:0.5", "model.ranking_weight=0:2:0.5"],
                  ["recall_at_100:max", "test_rmse:min"], "grid"),
    "retrieval": (["training.learning_rate=log:1e-3:0.3"], ["recall_at_100:max"], "tpe"),
    "ranking": (["training.learning_rate=log:1e-3:0.3"], ["test_rmse:min"], "tpe"),
}  # fmt: skip


class StudyForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    params = forms.CharField(label="Searched fields", widget=forms.Textarea(attrs={"rows": 4}), help_text="One per line: path=a,b,c · "
                             "path=lo:hi:step · path=lo:hi · path=log:lo:hi")  # fmt: skip
    objectives = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                                 help_text="One per line: a metric and max or min; two or more give a Pareto front")  # fmt: skip
    sampler = forms.ChoiceField(choices=[(s, s) for s in SAMPLERS])
    pruner = forms.ChoiceField(choices=[(p, p) for p in PRUNERS], help_text="Stops hopeless trials (one objective)")
    n_trials = forms.IntegerField(min_value=1, max_value=MAX_TRIALS, label="Trials")
    parallelism = forms.IntegerField(min_value=1, max_value=MAX_PARALLELISM, label="Parallel trials")

    @classmethod
    def suggested(cls, base: Experiment) -> StudyForm:
        params, objectives, sampler = SUGGESTED.get(base.model_type, SUGGESTED["multitask"])
        return cls(initial={"name": f"Tune {base.name}", "params": "\n".join(params),
                            "objectives": "\n".join(objectives), "sampler": sampler, "pruner": "none",
                            "n_trials": 25, "parallelism": 2})  # fmt: skip
