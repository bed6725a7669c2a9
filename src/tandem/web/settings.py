"""Settings of the Tandem platform, read from the environment so one file serves the demo, tests and production.

Environment:
  TANDEM_DATA_DIR          where the SQLite database, uploads, artifacts and the secret key live (default: ./data)
  DATABASE_URL             any dj-database-url URL (sqlite:///…, postgres://…); default SQLite in TANDEM_DATA_DIR
  TANDEM_MEDIA_ROOT        uploads and run artifacts on the filesystem storage (default: TANDEM_DATA_DIR/media)
  TANDEM_S3_BUCKET         store uploads and artifacts in this S3 bucket instead (any S3-compatible store), so that
                           workers on other machines reach them; credentials from AWS_ACCESS_KEY_ID and
                           AWS_SECRET_ACCESS_KEY (or any other way boto3 finds them)
  TANDEM_S3_ENDPOINT_URL   the store's URL when it is not AWS (MinIO, Ceph, …); MLflow uses it too
  TANDEM_S3_PREFIX         a folder in the bucket for everything the platform stores (default: none)
  TANDEM_S3_REGION         the bucket's region (default: boto3's)
  TANDEM_CACHE_DIR         this machine's copies of stored files (default: TANDEM_DATA_DIR/cache)
  DJANGO_SECRET_KEY        the secret key; without it one is generated once into TANDEM_DATA_DIR/secret_key
  TANDEM_DEBUG             "1" for Django's debug mode
  TANDEM_ALLOWED_HOSTS     comma-separated host names (default: 127.0.0.1,localhost)
  TANDEM_HTTPS             "1" when people reach the platform over HTTPS: secure cookies, HSTS, redirect to HTTPS
  TANDEM_PROXY_SSL_HEADER  "1" when a proxy in front terminates TLS and sets X-Forwarded-Proto
  TANDEM_CSRF_TRUSTED_ORIGINS  comma-separated origins (https://tandem.example.com) when served behind a proxy
  TANDEM_LOGIN_FAILURES    failed sign-ins per user name and address before a 15-minute lock-out (default 5)
  MLFLOW_TRACKING_URI      when set, every experiment is also an MLflow run
  MLFLOW_ARTIFACT_ROOT     where MLflow stores artifacts for a new MLflow experiment (default: the bucket's mlflow/
                           folder with TANDEM_S3_BUCKET, else TANDEM_DATA_DIR/mlartifacts)
  TANDEM_BUDGETS           a JSON object changing the defaults of tandem.web.budgets (upload bytes, quotas, …)
  TANDEM_HEARTBEAT_INTERVAL, TANDEM_HEARTBEAT_TIMEOUT   seconds between a running experiment's heartbeats, and
                           the silence after which it is declared dead (defaults 2 and 60)
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

# MLflow phones home unless told not to; the platform never does.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

BASE_DIR = Path(__file__).resolve().parent
REPO_ROOT = BASE_DIR.parents[2]
DATA_DIR = Path(os.environ.get("TANDEM_DATA_DIR") or REPO_ROOT / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The key from the environment, else one generated once and kept (private) in the data folder."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _database(url: str) -> dict:
    """One database from a URL; SQLite gets WAL and a busy timeout so two workers and the server can share it."""
    db = dj_database_url.parse(url, conn_max_age=0)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return db


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("TANDEM_DEBUG") == "1"
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("TANDEM_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]

INSTALLED_APPS = [
    # Our apps come first: experiments' `db_worker` command wraps django_tasks_db's (it reaps dead runs).
    "tandem.web.accounts",
    "tandem.web.datasets",
    "tandem.web.configs",
    "tandem.web.experiments",
    "tandem.web.deployments",
    "tandem.web.studies",
    "tandem.web.pages",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "axes",
    # In INSTALLED_APPS so the API docs use ninja's bundled Swagger files rather than a CDN.
    "ninja",
]

MIDDLEWARE = [
    "tandem.web.middleware.RequestLimits",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tandem.web.middleware.ContentSecurityPolicy",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lock-out answer.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: a locked-out user name and address is refused before the password is hashed.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("TANDEM_LOGIN_FAILURES", 5))
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "tandem.web.accounts.lockout.locked_out"
AXES_VERBOSE = False

# Served over HTTPS (TANDEM_HTTPS=1): cookies only over TLS, HSTS for a year, plain HTTP redirected.
HTTPS = os.environ.get("TANDEM_HTTPS") == "1"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS
if os.environ.get("TANDEM_PROXY_SSL_HEADER") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("TANDEM_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

ROOT_URLCONF = "tandem.web.urls"
WSGI_APPLICATION = "tandem.web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": _database(os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'tandem.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {"default": {"BACKEND": "django_tasks_db.backend.DatabaseBackend"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise reads it at start; `manage.py serve` fills it
# whitenoise serves the collected files (manage.py serve collects them), compressed, with long cache headers.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("TANDEM_MEDIA_ROOT") or DATA_DIR / "media").resolve()
TANDEM_CACHE_DIR = Path(os.environ.get("TANDEM_CACHE_DIR") or DATA_DIR / "cache").resolve()

# Workers on several machines share the database and one store (tandem.web.storage): an S3 bucket when one is named.
S3_BUCKET = os.environ.get("TANDEM_S3_BUCKET") or None
S3_ENDPOINT_URL = os.environ.get("TANDEM_S3_ENDPOINT_URL") or None
S3_PREFIX = os.environ.get("TANDEM_S3_PREFIX", "").strip("/")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL,
            "region_name": os.environ.get("TANDEM_S3_REGION") or None,
            "location": S3_PREFIX,
            "querystring_auth": False,
        },
    }
    if S3_ENDPOINT_URL:  # MLflow's S3 artifact store reads its endpoint from the environment
        os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", S3_ENDPOINT_URL)

LOGIN_URL = "pages:login"
LOGIN_REDIRECT_URL = "pages:dashboard"
LOGOUT_REDIRECT_URL = "login"

# Limits of requests, files, models and organisations (tandem.web.budgets lists them with their defaults),
# e.g. TANDEM_BUDGETS='{"upload_bytes": 1073741824, "running_servers": 8}'.
TANDEM_BUDGETS = json.loads(os.environ.get("TANDEM_BUDGETS") or "{}")
# A body that is not a file upload (JSON, a login form) is refused past this size, before it is read.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2
# Uploaded files past this size are streamed to a temporary file rather than held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2

TANDEM_HEARTBEAT_INTERVAL = float(os.environ.get("TANDEM_HEARTBEAT_INTERVAL", 2.0))
TANDEM_HEARTBEAT_TIMEOUT = float(os.environ.get("TANDEM_HEARTBEAT_TIMEOUT", 60.0))

MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or None
MLFLOW_ARTIFACT_ROOT = os.environ.get("MLFLOW_ARTIFACT_ROOT") or (
    f"s3://{S3_BUCKET}/{S3_PREFIX + '/' if S3_PREFIX else ''}mlflow" if S3_BUCKET else str(DATA_DIR / "mlartifacts")
)
MLFLOW_EXPERIMENT_NAME = os.environ.get("TANDEM_MLFLOW_EXPERIMENT", "tandem")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"tandem": {"handlers": ["console"], "level": os.environ.get("TANDEM_LOG_LEVEL", "INFO")}},
}
