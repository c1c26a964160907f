"""CLEAR settings: one module, read from the environment through django-environ.

Every value has a development default except the secrets that production must set; in production
mode (CLEAR_MODE=production) a missing secret stops start-up with a clear message instead of
silently falling back to a development value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

CLEAR_MODE = env.str("CLEAR_MODE", default="development")
if CLEAR_MODE not in {"development", "production"}:
    raise ImproperlyConfigured(f"CLEAR_MODE must be 'development' or 'production', not {CLEAR_MODE!r}")
PRODUCTION = CLEAR_MODE == "production"

_DEV_ONLY = "dev-only-not-secret"


# Values that are published (this file, Django's startproject template): never a production secret.
_PUBLISHED_SECRET_PREFIXES = (_DEV_ONLY, "django-insecure-")


def _secret(name: str) -> str:
    """A secret that production must provide; development gets a fixed, clearly marked default."""
    value = env.str(name, default="")
    if PRODUCTION and value.startswith(_PUBLISHED_SECRET_PREFIXES):
        raise ImproperlyConfigured(f"{name} is a published development value; set a random one in production")
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when CLEAR_MODE=production")
    return f"{_DEV_ONLY}-{name.lower()}"


SECRET_KEY = _secret("DJANGO_SECRET_KEY")
# Key of the HMAC that turns a source patient identifier into a pseudonym. Changing it changes every
# future pseudonym, so production must set it once per installation and keep it.
CLEAR_PSEUDONYM_SECRET = _secret("CLEAR_PSEUDONYM_SECRET")

DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[] if PRODUCTION else ["*"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "jobs",
    "records",
    "annotations",
    "inference",
    "studies",
    "exports",
    # The browser app: its view serves the Vite build at / and the app's routes (frontend/urls.py).
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # OperationalError/InterfaceError from a view: 503 + Retry-After, not 500 (config/database_errors.py).
    "config.database_errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# PostgreSQL in tests and production; the demo falls back to an SQLite file so that it needs no server.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'clear.sqlite3'}")}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
# The work-queue counts are kept by database triggers (records/migrations/0006) written for these two.
SUPPORTED_DATABASE_ENGINES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")
if DATABASES["default"]["ENGINE"] not in SUPPORTED_DATABASE_ENGINES:
    raise ImproperlyConfigured(
        f"DATABASE_URL must name PostgreSQL (or SQLite for the demo), not {DATABASES['default']['ENGINE']}"
    )
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # Keep connections open between requests (`?conn_max_age=` in DATABASE_URL wins): opening one
    # per request cost 7 ms of the 19 ms of a trivial authenticated request (bench/label_bench.py).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CLEAR_DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write to the same file: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static"))
# The browser app's build lands in frontend/static/frontend/ (an app static folder, found without
# STATICFILES_DIRS). Vite names its assets by content (name-HASH8.ext): whitenoise may let browsers
# cache them for good, as it does for the manifest storage's names (name.HEX12.ext), which this test,
# replacing whitenoise's default, keeps recognising.
_VITE_ASSET = re.compile(r"^.+-[0-9A-Za-z_-]{8}\.(?:js|css|woff2?|png|svg)$")
_MANIFEST_HASHED = re.compile(r"\.[0-9a-f]{12}\.[0-9A-Za-z]+$")


def _immutable_static(path: str, url: str) -> bool:
    if url.startswith(f"{STATIC_URL}frontend/assets/") and _VITE_ASSET.match(url):
        return True
    return bool(_MANIFEST_HASHED.search(url))


WHITENOISE_IMMUTABLE_FILE_TEST = _immutable_static
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Frames, previews, source videos, CAMs, model files and export archives live in the "media" storage,
# content-addressed by sha256 (records/media.py is the only way in). There is no MEDIA_URL on purpose:
# every file is streamed by an authenticated API view, never handed out as a public or signed URL.
MEDIA_ROOT = Path(env.path("CLEAR_MEDIA_ROOT", default=str(VAR_DIR / "media")))
# local: files below MEDIA_ROOT; s3: an S3-compatible bucket (credentials from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY in the environment, read by boto3 itself, so they never sit in settings).
CLEAR_STORAGE_BACKEND = env.str("CLEAR_STORAGE_BACKEND", default="local")
CLEAR_S3_BUCKET = env.str("CLEAR_S3_BUCKET", default="")
CLEAR_S3_ENDPOINT_URL = env.str("CLEAR_S3_ENDPOINT_URL", default="")
CLEAR_S3_REGION = env.str("CLEAR_S3_REGION", default="")
# Local copies of stored files for readers that need a real file, when the storage is remote: model
# files (kept, one download per worker and model), temporary copies and export archives being built.
CLEAR_MEDIA_CACHE_DIR = Path(env.path("CLEAR_MEDIA_CACHE_DIR", default=str(VAR_DIR / "media-cache")))
if CLEAR_STORAGE_BACKEND == "local":
    # The location follows MEDIA_ROOT (also when tests override it).
    STORAGES["media"] = {"BACKEND": "records.storage.MediaFileSystemStorage"}
elif CLEAR_STORAGE_BACKEND == "s3":
    if not CLEAR_S3_BUCKET:
        raise ImproperlyConfigured("CLEAR_S3_BUCKET must be set when CLEAR_STORAGE_BACKEND=s3")
    STORAGES["media"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": CLEAR_S3_BUCKET,
            "endpoint_url": CLEAR_S3_ENDPOINT_URL or None,
            "region_name": CLEAR_S3_REGION or None,
            # Names are content-addressed: the same name is the same bytes, never a new name.
            "file_overwrite": True,
            # Objects stay private (the bucket's policy decides); nothing is ever served by URL.
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    raise ImproperlyConfigured(
        f"CLEAR_STORAGE_BACKEND must be 'local' or 's3', not {CLEAR_STORAGE_BACKEND!r}"
    )
# Uploaded import sources wait here until their job has run.
CLEAR_UPLOAD_ROOT = Path(env.path("CLEAR_UPLOAD_ROOT", default=str(VAR_DIR / "uploads")))
# Local weight files a training run may start from (transfer learning; nothing is downloaded).
CLEAR_PRETRAINED_DIR = Path(env.path("CLEAR_PRETRAINED_DIR", default=str(VAR_DIR / "pretrained")))
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# Import safety limits (see records/importing/safety.py).
CLEAR_MAX_IMAGE_PIXELS = env.int("CLEAR_MAX_IMAGE_PIXELS", default=50_000_000)
CLEAR_ALLOWED_IMAGE_FORMATS = env.list(
    "CLEAR_ALLOWED_IMAGE_FORMATS", default=["PNG", "JPEG", "TIFF", "BMP", "WEBP"]
)
CLEAR_ALLOWED_VIDEO_EXTENSIONS = env.list(
    "CLEAR_ALLOWED_VIDEO_EXTENSIONS", default=[".mpeg", ".mpg", ".mp4", ".m4v", ".avi", ".mov", ".mkv"]
)
CLEAR_ZIP_MAX_MEMBERS = env.int("CLEAR_ZIP_MAX_MEMBERS", default=200_000)
CLEAR_ZIP_MAX_TOTAL_BYTES = env.int("CLEAR_ZIP_MAX_TOTAL_BYTES", default=20 * 1024**3)
CLEAR_ZIP_MAX_MEMBER_BYTES = env.int("CLEAR_ZIP_MAX_MEMBER_BYTES", default=2 * 1024**3)
CLEAR_ZIP_MAX_RATIO = env.int("CLEAR_ZIP_MAX_RATIO", default=200)
CLEAR_MAX_UPLOAD_BYTES = env.int("CLEAR_MAX_UPLOAD_BYTES", default=20 * 1024**3)
CLEAR_PREVIEW_MAX_SIDE = env.int("CLEAR_PREVIEW_MAX_SIDE", default=512)
# Frames per batch of a re-score job (one forward + CAM, one transaction of Prediction rows).
CLEAR_RESCORE_BATCH_SIZE = env.int("CLEAR_RESCORE_BATCH_SIZE", default=32)
# Model files kept loaded per web process for single-frame prediction on demand (LRU, by sha256).
CLEAR_ONDEMAND_MODEL_CACHE = env.int("CLEAR_ONDEMAND_MODEL_CACHE", default=2)
# Torch threads of a web process that predicts on demand (1: several web workers share the cores;
# see inference/ondemand.py). 0 keeps torch's default.
CLEAR_ONDEMAND_TORCH_THREADS = env.int("CLEAR_ONDEMAND_TORCH_THREADS", default=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # DRF's, in one hand-written query (config/authentication.py).
        "config.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's defaults, with a JSON parser that answers too deeply nested bodies with 400 (config/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "records.pagination.CreatedCursorPagination",
    # Login throttles count per client address. DRF's default (NUM_PROXIES None) takes the whole
    # X-Forwarded-For header as the address, which a client can vary to escape every throttle: trust
    # exactly the proxies in front (production: one TLS proxy, which appends the client's address;
    # set CLEAR_NUM_PROXIES=0 when nothing is in front).
    "NUM_PROXIES": env.int("CLEAR_NUM_PROXIES", default=1 if PRODUCTION else 0),
    "PAGE_SIZE": 100,
    # drf-spectacular's, documenting the error answers DRF gives (config/schema.py).
    "DEFAULT_SCHEMA_CLASS": "config.schema.ClearAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + ([] if PRODUCTION else ["rest_framework.renderers.BrowsableAPIRenderer"]),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CLEAR API",
    "DESCRIPTION": "Endomicroscopy and endoscopy image review: records, imports, labels, studies, models.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # `<int:...>` path ids match digits only (config/schema.py PATH_ID).
    "PATH_CONVERTER_OVERRIDES": {"int": {"type": "integer", "minimum": 0}},
    # Two different choice sets are called "kind" (videos, label tasks): name the label tasks' one.
    "ENUM_NAME_OVERRIDES": {
        "LabelTaskKindEnum": "annotations.models.LabelTask.Kind",
        "ExportStatusEnum": "exports.models.ExportSnapshot.Status",
        "ExportLabelSourceEnum": "exports.models.ExportSnapshot.LabelSource",
        "ModelVersionStatusEnum": "inference.models.ModelVersion.Status",
    },
}

LOGIN_URL = "/api-auth/login/"
LOGIN_REDIRECT_URL = "/api/docs/"

# --- Celery -------------------------------------------------------------------------------------
# Redis in tests and production. Without a configured broker the demo uses kombu's filesystem
# transport: no server to run, and still a real worker process consuming real messages.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_FOLDER = Path(env.path("CLEAR_BROKER_FOLDER", default=str(VAR_DIR / "broker")))
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CLEAR_TASK_SOFT_TIME_LIMIT", default=6 * 3600)
CELERY_TASK_TIME_LIMIT = env.int("CLEAR_TASK_TIME_LIMIT", default=6 * 3600 + 300)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Redis hands a message that a worker took but never acknowledged (the worker was killed) to another
# worker after this many seconds. It must exceed the hard time limit, or a task still running would
# be delivered a second time; the end-to-end tests lower it to see a killed worker's job come back.
CLEAR_BROKER_VISIBILITY_TIMEOUT = env.int(
    "CLEAR_BROKER_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 600
)
if PRODUCTION and CLEAR_BROKER_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CLEAR_BROKER_VISIBILITY_TIMEOUT must exceed CLEAR_TASK_TIME_LIMIT")
# How often (seconds) a worker looks for such messages; unset keeps kombu's default (about every
# 100 s), which is plenty beside a visibility timeout of hours.
CLEAR_BROKER_RESTORE_INTERVAL = env.int("CLEAR_BROKER_RESTORE_INTERVAL", default=0)
# Prefix of every Redis key the broker uses, so that several installations or test runs can share one
# Redis server (and database index) without consuming each other's messages.
CLEAR_BROKER_KEY_PREFIX = env.str("CLEAR_BROKER_KEY_PREFIX", default="")
# A job whose row says running but whose worker has not reported for this long is presumed lost.
CLEAR_JOB_STALE_SECONDS = env.int("CLEAR_JOB_STALE_SECONDS", default=600)
# The beat's sweeper (jobs.sweep) runs this often. It sends a job's message again when the job is
# still queued after CLEAR_JOB_QUEUED_TIMEOUT_SECONDS, or running with a stale heartbeat: Redis keeps
# messages in memory, so a Redis restart loses them, while the Job row in Postgres survives.
CLEAR_JOB_SWEEP_SECONDS = env.int("CLEAR_JOB_SWEEP_SECONDS", default=60)
CLEAR_JOB_QUEUED_TIMEOUT_SECONDS = env.int("CLEAR_JOB_QUEUED_TIMEOUT_SECONDS", default=600)
# A task whose database went away (OperationalError: restart, failover) is retried this many times
# with exponential backoff (1, 2, 4 ... s, capped at 60 s) before it gives up.
CLEAR_TASK_DATABASE_RETRIES = env.int("CLEAR_TASK_DATABASE_RETRIES", default=10)
# Seconds a client is told to wait (Retry-After) when a request finds the database unavailable (503).
CLEAR_DATABASE_RETRY_AFTER_SECONDS = env.int("CLEAR_DATABASE_RETRY_AFTER_SECONDS", default=5)
# Worker heartbeats for readiness (config/heartbeat.py, config/health.py): every worker writes one
# this often; /readyz wants one no older than the max age on each queue listed (an empty list keeps
# the worker check informational, e.g. for a web node whose load balancer should ignore workers).
CLEAR_WORKER_HEARTBEAT_SECONDS = env.int("CLEAR_WORKER_HEARTBEAT_SECONDS", default=15)
CLEAR_WORKER_HEARTBEAT_MAX_AGE = env.int("CLEAR_WORKER_HEARTBEAT_MAX_AGE", default=60)
CLEAR_READYZ_WORKER_QUEUES = env.list("CLEAR_READYZ_WORKER_QUEUES", default=["cpu", "gpu"])
# Probes from inside the host speak plain HTTP: they get the answer, not a redirect to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# How often the beat checks the retrain policies (inference.retrain_check).
CLEAR_RETRAIN_CHECK_SECONDS = env.int("CLEAR_RETRAIN_CHECK_SECONDS", default=900)
# How long a submit's Idempotency-Key is remembered (hours); an hourly beat task forgets older ones.
CLEAR_IDEMPOTENCY_KEY_TTL_HOURS = env.int("CLEAR_IDEMPOTENCY_KEY_TTL_HOURS", default=72)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("CLEAR_LOG_LEVEL", default="INFO")},
}

if PRODUCTION:
    # HTTPS only (`manage.py check --deploy` is clean with these; tests/ops/test_deploy_checks.py).
    # Production runs behind a TLS-terminating reverse proxy (platform/README.md), which must set
    # X-Forwarded-Proto on every request, overwriting what the client sent; without such a proxy
    # set DJANGO_SECURE_PROXY_SSL_HEADER=false, or any client could claim HTTPS.
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Asking browsers to preload HSTS (hstspreload.org) binds the whole registrable domain and
        # takes months to undo: a decision for the domain's owner, not a default of this app.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Weights and data never come from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
