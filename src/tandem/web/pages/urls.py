"""The pages' URLs, mounted at the site's root (namespace "pages")."""

from django.contrib.auth import views as auth_views
from django.urls import path

from tandem.web.configs import views as config_views
from tandem.web.deployments import views as deployment_views
from tandem.web.pages import views

app_name = "pages"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="pages/login.html", next_page="pages:dashboard", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="pages:login"), name="logout"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/new/", views.dataset_new, name="dataset_new"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/histograms/", views.dataset_histograms, name="dataset_histograms"),
    path("datasets/<int:pk>/status/", views.dataset_status, name="dataset_status"),
    path("datasets/<int:pk>/delete/", views.dataset_delete, name="dataset_delete"),
    path("feature-configs/", views.feature_config_list, name="feature_configs"),
    path("feature-configs/new/", views.feature_config_new, name="feature_config_new"),
    path("feature-configs/<int:pk>/", views.feature_config_detail, name="feature_config"),
    path("feature-configs/<int:pk>/edit/", views.feature_config_edit, name="feature_config_edit"),
    path("feature-configs/<int:pk>/delete/", views.feature_config_delete, name="feature_config_delete"),
    path("model-configs/", views.model_config_list, name="model_configs"),
    path("model-configs/new/", views.model_config_new, name="model_config_new"),
    path("model-configs/<int:pk>/", views.model_config_detail, name="model_config"),
    path("model-configs/<int:pk>/edit/", views.model_config_edit, name="model_config_edit"),
    path("model-configs/<int:pk>/delete/", views.model_config_delete, name="model_config_delete"),
    path("experiments/", views.experiment_list, name="experiments"),
    path("experiments/new/", views.experiment_new, name="experiment_new"),
    path("experiments/new/recommended/", config_views.recommended, name="experiment_recommended"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment"),
    path("experiments/<int:pk>/card/", views.experiment_card, name="experiment_card"),
    path("experiments/<int:pk>/live/", views.experiment_live, name="experiment_live"),
    path("experiments/<int:pk>/cancel/", views.experiment_cancel, name="experiment_cancel"),
    path("experiments/<int:pk>/rerun/", views.experiment_rerun, name="experiment_rerun"),
    path("experiments/<int:pk>/deployment/", deployment_views.deployment_panel, name="deployment"),
    path("experiments/<int:pk>/deploy/", deployment_views.deploy, name="deploy"),
    path("experiments/<int:pk>/deployment/stop/", deployment_views.stop, name="deployment_stop"),
    path("experiments/<int:pk>/try/", deployment_views.try_it, name="try_it"),
    path("compare/", views.compare, name="compare"),
]
