from django.apps import AppConfig


class PagesConfig(AppConfig):
    name = "tandem.web.pages"
    label = "pages"
    verbose_name = "Pages"
