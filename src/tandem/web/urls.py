"""URLs: the pages at the root, the API under /api/, and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from tandem.web.api import api, not_found

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="pages:dashboard"), name="home"),
    # Django's default sign-in address, kept for links and scripts that expect it.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="pages/login.html", next_page="pages:dashboard"),
        name="login",
    ),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", not_found),
    path("", include("tandem.web.pages.urls")),
    path("", include("tandem.web.studies.urls")),
]
