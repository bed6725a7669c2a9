"""The entry for management commands, shared by the root manage.py and `python -m tandem.web`."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run a Django management command with Tandem's settings (unless DJANGO_SETTINGS_MODULE says otherwise)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tandem.web.settings")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv if argv is not None else sys.argv)
