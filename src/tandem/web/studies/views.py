"""The study pages: "tune this" from an experiment, the study (live while running), promote, cancel."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tandem.study.objectives import parse_objectives
from tandem.study.record import best_number, pareto_numbers
from tandem.web.accounts.auth import Actor
from tandem.web.errors import ApiError
from tandem.web.experiments.models import Experiment
from tandem.web.experiments.reaper import reap_expired
from tandem.web.pages import queries
from tandem.web.pages.views import org_required
from tandem.web.studies import charts, services
from tandem.web.studies.forms import StudyForm
from tandem.web.studies.models import Study, StudyStatus, StudyTrial


@org_required
def tune(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Create a study from an experiment: every problem is shown beside its field before anything runs."""
    base = queries.owned(Experiment, actor.organisation, pk)
    if request.method != "POST":
        return render(request, "studies/tune.html", {"base": base, "form": StudyForm.suggested(base)})
    form = StudyForm(request.POST)
    if form.is_valid():
        try:
            study = services.create_study(actor.organisation, actor.user, base, form.cleaned_data)
        except ValidationError as e:
            for field, problems in e.message_dict.items():
                for problem in problems:
                    form.add_error(field if field in form.fields else None, problem)
        except ApiError as e:  # the queue's budget
            form.add_error(None, e.message)
        else:
            return redirect("studies:study", pk=study.pk)
    return render(request, "studies/tune.html", {"base": base, "form": form}, status=400)


@org_required
def study_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    studies = Study.objects.of(actor.organisation).select_related("base")
    return render(request, "studies/study_list.html", {"studies": studies})


def _context(study: Study) -> dict:
    trials = list(study.trials.select_related("experiment"))
    objectives = parse_objectives(list(study.objectives))
    ostudy = services.optuna_study(study)
    front = pareto_numbers(ostudy)
    space = services.space_of(study)
    paths = [p.path for p in space.params]
    searched = [p.path for p in space.params if len(p.grid() or [None, None]) > 1]
    counts = {state: sum(t.state == state for t in trials) for state in ("running", "complete", "pruned", "failed")}
    return {
        "study": study, "trials": trials, "front": front, "best": best_number(ostudy), "objectives": objectives, "counts": counts,
        "pareto_chart": charts.pareto_chart(trials, objectives, front),
        "best_chart": charts.best_so_far_chart(trials, objectives[0]),
        "importance_chart": charts.importance_chart(
            {k: v for k, v in services.importances(ostudy).items() if k in searched}, objectives[0]
        ),
        "slice_charts": charts.slice_charts(trials, objectives[0], searched), "paths": paths,
        "finished": len(trials) - counts["running"],
        "single": {t.number for t in trials if charts.single_task(t)},
    }  # fmt: skip


@org_required
def study_detail(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """The trials, the Pareto front, best-so-far, importances, slices; the live panel polls while it runs."""
    reap_expired()
    study = queries.owned(Study, actor.organisation, pk)
    return render(request, "studies/study_detail.html", _context(study))


@org_required
def study_live(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """The live panel (progress and the trial table); when the study ends the whole page reloads."""
    reap_expired()
    study = queries.owned(Study, actor.organisation, pk)
    if study.status != StudyStatus.RUNNING:
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return render(request, "studies/partials/live.html", _context(study))


@require_POST
@org_required
def study_cancel(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    study = queries.owned(Study, actor.organisation, pk)
    try:
        services.cancel(study)
    except ApiError as e:
        messages.error(request, e.message)
    else:
        messages.success(request, "Study cancelled: no new trials, running ones stopped.")
    return redirect("studies:study", pk=pk)


@require_POST
@org_required
def promote(request: HttpRequest, actor: Actor, pk: int, number: int) -> HttpResponse:
    """Copy a trial's configs as named configs."""
    study = queries.owned(Study, actor.organisation, pk)
    trial = get_object_or_404(StudyTrial.objects.select_related("experiment", "study"), study=study, number=number)
    try:
        features, model = services.promote(trial, actor.user)
    except ApiError as e:
        messages.error(request, e.message)
        return redirect("studies:study", pk=pk)
    messages.success(request, f"Trial {number} promoted: feature config “{features.name}” and model config "
                              f"“{model.name}”.")  # fmt: skip
    return redirect("pages:model_config", pk=model.pk)
