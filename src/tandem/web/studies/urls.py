"""The study pages' URLs (namespace "studies"), mounted at the site's root."""

from django.urls import path

from tandem.web.studies import views

app_name = "studies"

urlpatterns = [
    path("experiments/<int:pk>/tune/", views.tune, name="tune"),
    path("studies/", views.study_list, name="studies"),
    path("studies/<int:pk>/", views.study_detail, name="study"),
    path("studies/<int:pk>/live/", views.study_live, name="study_live"),
    path("studies/<int:pk>/cancel/", views.study_cancel, name="study_cancel"),
    path("studies/<int:pk>/trials/<int:number>/promote/", views.promote, name="promote"),
]
