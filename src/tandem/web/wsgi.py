"""WSGI entry (gunicorn tandem.web.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tandem.web.settings")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

application = get_wsgi_application()
