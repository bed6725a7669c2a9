"""The production settings pass Django's deployment checks: `manage.py check --deploy` reports no issue at all
(warnings count) with the settings the README's "running it for real" section sets."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.conftest import REPO_ROOT


def _check_deploy(data_dir: Path, **settings: str) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level WARNING` in a fresh process with only these platform settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TANDEM_", "DJANGO_", "DATABASE_URL"))}
    env.update(TANDEM_DATA_DIR=str(data_dir), DJANGO_SECRET_KEY=secrets.token_urlsafe(50), **settings)
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT, env={**env, "MLFLOW_DISABLE_TELEMETRY": "true"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("behind_proxy", [False, True])
def test_check_deploy_is_clean(tmp_path: Path, behind_proxy: bool) -> None:
    proxy = {"TANDEM_PROXY_SSL_HEADER": "1", "TANDEM_CSRF_TRUSTED_ORIGINS": "https://tandem.example.com"}
    done = _check_deploy(tmp_path, TANDEM_ALLOWED_HOSTS="tandem.example.com", TANDEM_HTTPS="1",
                         **(proxy if behind_proxy else {}))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_check_deploy_names_what_plain_http_lacks(tmp_path: Path) -> None:
    """Without TANDEM_HTTPS the same check fails, naming the cookie and HTTPS settings: the test can fail."""
    done = _check_deploy(tmp_path)
    assert done.returncode != 0 and "SESSION_COOKIE_SECURE" in done.stderr + done.stdout
