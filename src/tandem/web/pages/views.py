"""The pages. Views stay thin: they read through `queries`, validate with the platform's forms (subclassed in
`forms`), act through the platform's services, and render. Another organisation's record is a 404.

htmx requests (header HX-Request) get the fragment they swap in; the same URLs serve whole pages without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_POST

from tandem.web import records
from tandem.web.accounts.auth import Actor, actor_for
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets import services as dataset_services
from tandem.web.datasets.forms import DatasetUpdateForm
from tandem.web.datasets.models import Dataset
from tandem.web.datasets.models import Status as DatasetStatus
from tandem.web.deployments.panel import panel as deployment_panel
from tandem.web.errors import ApiError, Conflict
from tandem.web.experiments import services as experiment_services
from tandem.web.experiments.models import Experiment, Status
from tandem.web.experiments.reaper import reap_expired
from tandem.web.pages import charts, describe, forms, histograms, queries

View = Callable[..., HttpResponse]


def org_required(view: View) -> View:
    """Sign-in required, and an organisation: the view receives the caller's Actor after the request."""

    @wraps(view)
    @login_required(login_url="pages:login")
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        actor = actor_for(request.user)
        if actor is None:
            return render(request, "pages/no_organisation.html", status=403)
        return view(request, actor, *args, **kwargs)

    return wrapper


def _htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect; an htmx request is told to load the page (HX-Redirect) instead of swapping it into a fragment."""
    if _htmx(request):
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


# ---------------------------------------------------------------------------------------------- dashboard


@org_required
def dashboard(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Counts, what is training now, and a leaderboard tab per model type (htmx swaps only the tab)."""
    org = actor.organisation
    panel = queries.dashboard_panel(org, request.GET.get("type", ""), request.GET.get("by", ""))
    panel["chart"] = charts.best_over_time_chart(panel["tab"], panel.pop("best"))
    if _htmx(request) and request.headers.get("HX-Target") == "dashboard-panel":
        return render(request, "pages/partials/dashboard_panel.html", panel)
    context = {**panel, "counts": queries.counts(org), "active": list(queries.experiments(org, status="active")[:6])}
    return render(request, "pages/dashboard.html", context)


# ----------------------------------------------------------------------------------------------- datasets


@org_required
def dataset_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The organisation's datasets."""
    datasets = Dataset.objects.of(actor.organisation)
    return render(request, "pages/dataset_list.html", {"datasets": datasets})


@org_required
def dataset_new(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Upload: the platform's service profiles and stores it; its errors go beside their fields."""
    if request.method != "POST":
        return render(request, "pages/dataset_new.html", {"form": forms.UploadForm()})
    try:
        dataset = dataset_services.create_dataset(
            actor.organisation, actor.user, request.POST.dict(), request.FILES.dict()
        )
    except ValidationError as e:
        form = forms.UploadForm(request.POST, request.FILES)
        if form.is_valid():  # else the form's own errors are the ones the service raised
            forms.apply_errors(form, e)
        template = "pages/partials/upload_form.html" if _htmx(request) else "pages/dataset_new.html"
        return render(request, template, {"form": form})
    messages.success(request, f"Dataset “{dataset.name}” uploaded; its statistics are being computed.")
    return _go(request, reverse("pages:dataset", args=[dataset.pk]))


@org_required
def dataset_detail(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """A dataset's name, its buyer, product and timestamp columns (fixed once an experiment uses it), what uses
    it, and its schema and statistics. A POST saves the name form or the columns form (`action` says which)."""
    dataset = queries.owned(Dataset, actor.organisation, pk)
    action = request.POST.get("action")
    name_form = forms.DatasetNameForm(request.POST if action == "rename" else None, dataset=dataset)
    columns_form = forms.ColumnsForm(request.POST if action == "columns" else None, dataset=dataset)
    form = name_form if action == "rename" else columns_form
    if request.method == "POST" and form.is_valid():
        try:
            records.update(dataset, DatasetUpdateForm, data=form.cleaned_data)
        except ValidationError as e:
            forms.apply_errors(form, e)
        except Conflict as e:
            form.add_error(None, e.message)
        else:
            messages.success(request, "Name saved." if action == "rename" else "Columns saved.")
            return redirect("pages:dataset", pk=dataset.pk)
    context = {
        "dataset": dataset,
        "name_form": name_form,
        "form": columns_form,
        "tables": queries.profile_tables(dataset),
        "experiments": queries.experiments(actor.organisation).filter(dataset=dataset)[:10],
        "uses": dataset.experiments.count(),
        "urls": {"delete": reverse("pages:dataset_delete", args=[dataset.pk])},  # its page has its own buttons
    }
    return render(request, "pages/dataset_detail.html", context)


@org_required
def dataset_status(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """The profiling status, polled while it profiles; once it has ended the page reloads to show the result."""
    dataset = queries.owned(Dataset, actor.organisation, pk)
    if dataset.status != DatasetStatus.PROFILING and _htmx(request):
        return HttpResponse(status=200, headers={"HX-Refresh": "true"})
    return render(request, "pages/partials/dataset_status.html", {"dataset": dataset})


@require_POST
@org_required
def dataset_delete(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Delete a dataset and its files; refused, with the reason, while an experiment uses it."""
    dataset = queries.owned(Dataset, actor.organisation, pk)
    return _delete(request, dataset, dataset_services.delete_dataset, "pages:datasets", "pages:dataset")


@org_required
def dataset_histograms(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """The statistics tables with their histograms, loaded after the page (binning reads the file)."""
    dataset = queries.owned(Dataset, actor.organisation, pk)
    tables = queries.profile_tables(dataset, histograms.histograms(dataset) if dataset.is_ready else {})
    return render(request, "pages/partials/profile_tables.html", {"dataset": dataset, "tables": tables})


# ------------------------------------------------------------------------------------------------ configs


def _delete(
    request: HttpRequest, record: Any, remove: Callable[[Any], None], list_view: str, detail_view: str
) -> HttpResponse:
    """Delete a dataset or config; while experiments use it the refusal says how many, and nothing is deleted."""
    kind = record._meta.verbose_name.capitalize()
    uses = record.experiments.count()
    if not uses:
        try:
            remove(record)
        except ProtectedError as e:  # an experiment started meanwhile
            uses = len(e.protected_objects)
        else:
            messages.success(request, f"{kind} “{record.name}” deleted.")
            return redirect(list_view)
    messages.error(
        request,
        f"{kind} “{record.name}” is used by {uses} experiment{pluralize(uses)}, so it cannot be deleted: "
        "deleting it would take away what they ran. Delete those experiments first.",
    )
    return redirect(detail_view, pk=record.pk)


def _refused(request: HttpRequest, record: Any, copy_url: str, detail_url: str) -> HttpResponse:
    """An edit refused because experiments use the config (409), with a way to copy it and edit the copy."""
    context = {"record": record, "kind": record._meta.verbose_name, "uses": record.experiments.count()}
    context.update({"copy_url": copy_url, "detail_url": detail_url})
    return render(request, "pages/config_refused.html", context, status=409)


def _record_urls(name: str, pk: int) -> dict[str, str]:
    """A config's edit, copy-and-edit, delete and new-experiment addresses (views named name_edit, name_new?from=,
    name_delete; experiment_new?name=)."""
    return {
        "edit": reverse(f"pages:{name}_edit", args=[pk]),
        "copy": f"{reverse(f'pages:{name}_new')}?from={pk}",
        "delete": reverse(f"pages:{name}_delete", args=[pk]),
        "use": f"{reverse('pages:experiment_new')}?{name}={pk}",
    }


def _copy_name(record: Any) -> str:
    """A free name for a copy of `record`: "name (copy)", "name (copy 2)", …"""
    taken = set(type(record).objects.of(record.organisation).values_list("name", flat=True))
    n, name = 1, f"{record.name} (copy)"
    while name in taken:
        n += 1
        name = f"{record.name} (copy {n})"
    return name


# ---------------------------------------------------------------------------------------- feature configs


@org_required
def feature_config_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The organisation's feature configs."""
    configs = FeatureConfig.objects.of(actor.organisation)
    has_datasets = Dataset.objects.of(actor.organisation).exists()
    return render(request, "pages/feature_config_list.html", {"configs": configs, "has_datasets": has_datasets})


def _feature_config_form(
    request: HttpRequest, actor: Actor, *, instance: FeatureConfig | None = None, source: FeatureConfig | None = None
) -> HttpResponse:
    """The feature config builder: new, an edit of `instance`, or a copy of `source`; ?dataset= picks the columns."""
    org = actor.organisation
    datasets = Dataset.objects.of(org)
    chosen = request.POST.get("dataset") or request.GET.get("dataset")
    dataset = queries.owned(Dataset, org, int(chosen)) if chosen and chosen.isdigit() else datasets.first()
    context: dict[str, Any] = {"datasets": datasets, "dataset": dataset, "instance": instance, "source": source}
    if dataset is None:
        return render(request, "pages/feature_config_new.html", context)
    initial = forms.feature_config_initial(instance or source, dataset) if (instance or source) else {}
    if source is not None:
        initial["name"] = _copy_name(source)
    form = forms.FeatureConfigBuilderForm(
        request.POST or None, organisation=org, user=actor.user, dataset=dataset, instance=instance, initial=initial
    )
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        config = form.save()
        messages.success(request, f"Feature config “{config.name}” saved.")
        return redirect("pages:feature_config", pk=config.pk)
    return render(request, "pages/feature_config_new.html", context)


# ------------------------------------------------------------------------------------------ model configs


@org_required
def model_config_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The organisation's model configs."""
    configs = ModelConfig.objects.of(actor.organisation)
    return render(request, "pages/model_config_list.html", {"configs": configs})


def _model_config_form(
    request: HttpRequest, actor: Actor, *, instance: ModelConfig | None = None, source: ModelConfig | None = None
) -> HttpResponse:
    """The model config form: new, an edit of `instance`, or a copy of `source`."""
    org = actor.organisation
    initial = {**forms.model_config_initial(source), "name": _copy_name(source)} if source is not None else {}
    form = forms.ModelConfigPageForm(
        request.POST or None, organisation=org, user=actor.user, instance=instance, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        config = form.save()
        messages.success(request, f"Model config “{config.name}” saved.")
        return redirect("pages:model_config", pk=config.pk)
    return render(request, "pages/model_config_new.html", {"form": form, "instance": instance, "source": source})


# ------------------------------------------------------------------------------- a config's own pages


@dataclass(frozen=True)
class ConfigPages:
    """What differs between the feature-config and model-config pages: the record, its URL names, what its
    detail page says about it, and its form view (new, edit of an instance, or copy of a source)."""

    model: type[FeatureConfig] | type[ModelConfig]
    name: str
    about: Callable[[Any], Any]
    form: Callable[..., HttpResponse]

    def new(self, request: HttpRequest, actor: Actor) -> HttpResponse:
        """A new config; ?from= starts from a copy of another."""
        source = request.GET.get("from", "")
        copied = queries.owned(self.model, actor.organisation, int(source)) if source.isdigit() else None
        return self.form(request, actor, source=copied)

    def detail(self, request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
        """What each number means, every field of its sections, and what uses it."""
        config = queries.owned(self.model, actor.organisation, pk)
        context = {
            "config": config,
            "about": self.about(config),
            "experiments": queries.experiments(actor.organisation).filter(**{self.name: config})[:10],
            "uses": config.experiments.count(),
            "urls": _record_urls(self.name, config.pk),
        }
        return render(request, f"pages/{self.name}_detail.html", context)

    def edit(self, request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
        """Change a config; refused while experiments use it (a copy can be edited instead)."""
        config = queries.owned(self.model, actor.organisation, pk)
        if config.is_in_use:
            copy = _record_urls(self.name, config.pk)["copy"]
            return _refused(request, config, copy, reverse(f"pages:{self.name}", args=[config.pk]))
        return self.form(request, actor, instance=config)

    def delete(self, request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
        """Delete a config no experiment uses."""
        config = queries.owned(self.model, actor.organisation, pk)
        return _delete(request, config, records.delete, f"pages:{self.name}s", f"pages:{self.name}")


FEATURE_CONFIG_PAGES = ConfigPages(
    FeatureConfig, "feature_config", lambda c: describe.feature_config(c.features), _feature_config_form
)
MODEL_CONFIG_PAGES = ConfigPages(
    ModelConfig, "model_config", lambda c: describe.model_config(c.model, c.training, c.recommend), _model_config_form
)
feature_config_new = org_required(FEATURE_CONFIG_PAGES.new)
feature_config_detail = org_required(FEATURE_CONFIG_PAGES.detail)
feature_config_edit = org_required(FEATURE_CONFIG_PAGES.edit)
feature_config_delete = require_POST(org_required(FEATURE_CONFIG_PAGES.delete))
model_config_new = org_required(MODEL_CONFIG_PAGES.new)
model_config_detail = org_required(MODEL_CONFIG_PAGES.detail)
model_config_edit = org_required(MODEL_CONFIG_PAGES.edit)
model_config_delete = require_POST(org_required(MODEL_CONFIG_PAGES.delete))


# -------------------------------------------------------------------------------------------- experiments


@org_required
def experiment_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Experiment cards, filtered by status and model type; htmx swaps only the cards."""
    reap_expired()  # as the API does: a run whose worker died is shown failed, not running for ever
    status, model_type = request.GET.get("status", ""), request.GET.get("model_type", "")
    context = {
        "experiments": queries.experiments(actor.organisation, status=status, model_type=model_type),
        "status": status,
        "model_type": model_type,
        "statuses": Status.choices,
        "model_types": queries.MODEL_TYPES,
        "any": Experiment.objects.of(actor.organisation).exists(),
    }
    if _htmx(request) and request.headers.get("HX-Target") == "experiment-cards":
        return render(request, "pages/partials/experiment_cards.html", context)
    return render(request, "pages/experiment_list.html", context)


@org_required
def experiment_card(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """One card, polled every two seconds while its experiment is pending or running."""
    reap_expired()
    experiment = queries.owned(Experiment, actor.organisation, pk)
    return render(request, "pages/partials/experiment_card.html", {"e": experiment})


@org_required
def experiment_new(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Validate (every problem listed, nothing started) or start an experiment; ?from= copies another."""
    org = actor.organisation
    if request.method != "POST":
        source = request.GET.get("from", "")
        initial = forms.experiment_initial(queries.owned(Experiment, org, int(source))) if source.isdigit() else {}
        chosen = ("dataset", "feature_config", "model_config", "split_kind", "split_cutoff")
        initial.update({k: v for k, v in request.GET.items() if k in chosen})
        form = forms.NewExperimentForm(initial=initial, organisation=org, user=actor.user)
        return render(request, "pages/experiment_new.html", {"form": form})
    form = forms.NewExperimentForm(request.POST, organisation=org, user=actor.user)
    checked = form.is_valid()
    if checked and request.POST.get("action") == "start":
        try:
            experiment = experiment_services.create_experiment(org, actor.user, request.POST.dict())
        except ValidationError as e:
            forms.apply_errors(form, e)
        except ApiError as e:  # over a budget: the organisation's queue is full
            messages.error(request, e.message)
        else:
            messages.success(request, f"Experiment “{experiment.name}” queued.")
            return redirect("pages:experiment", pk=experiment.pk)
    return render(request, "pages/experiment_new.html", {"form": form, "checked": checked and not form.errors})


@org_required
def experiment_detail(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Metrics with baselines, curves, weight statistics, configuration, error, tracking and actions."""
    reap_expired()
    experiment = queries.owned(Experiment, actor.organisation, pk)
    context = {
        "e": experiment,
        "summary": queries.summary(experiment),
        "curves": charts.training_curves(experiment),
        "weights": charts.weight_charts(experiment),
        "mlflow_url": queries.mlflow_run_url(experiment),
        "deploy": deployment_panel(experiment),
    }
    return render(request, "pages/experiment_detail.html", context)


@org_required
def experiment_live(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """The progress panel of the detail page, polled while the run is active."""
    reap_expired()
    experiment = queries.owned(Experiment, actor.organisation, pk)
    if not queries.is_active(experiment):
        # The run ended: the whole page changes (metrics, charts, buttons), so htmx reloads it.
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return render(request, "pages/partials/experiment_live.html", {"e": experiment})


def _experiment_action(
    request: HttpRequest, actor: Actor, pk: int, action: Callable[[Experiment], object], done: str
) -> HttpResponse:
    """Apply a service action to one of the organisation's experiments; a refusal becomes a message."""
    experiment = queries.owned(Experiment, actor.organisation, pk)
    try:
        action(experiment)
    except ApiError as e:  # a state that forbids it, or a budget
        messages.error(request, e.message)
    else:
        messages.success(request, done)
    return redirect("pages:experiment", pk=pk)


@require_POST
@org_required
def experiment_cancel(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Cancel a pending or running experiment."""
    return _experiment_action(request, actor, pk, experiment_services.cancel, "Experiment cancelled.")


@require_POST
@org_required
def experiment_rerun(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Run a failed or cancelled experiment again."""
    return _experiment_action(request, actor, pk, experiment_services.rerun, "Experiment queued again.")


# ------------------------------------------------------------------------------------------------ compare


@org_required
def compare(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Two or more experiments of any model types side by side (?ids=1&ids=2), best values marked."""
    org = actor.organisation
    ids = [int(i) for i in request.GET.getlist("ids") if i.isdigit()]
    chosen = queries.compared(org, ids) if ids else []
    context = {
        "candidates": queries.experiments(org).exclude(status__in=(Status.PENDING, Status.RUNNING)),
        "ids": ids,
        "chosen": chosen,
        "rows": queries.comparison(chosen) if len(chosen) >= 2 else [],
        "curves": charts.compare_curves(chosen) if len(chosen) >= 2 else [],
    }
    return render(request, "pages/compare.html", context)
