"""URLs: the API under /api/, the admin, sign-in, and a home page (the pages of a later issue mount here)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from tandem.web import views
from tandem.web.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("", include("tandem.web.pages.urls")),
]
