"""Settings for Bunch.

Every value comes from the environment through ``config.env`` and has a default that runs
on a laptop with nothing installed: SQLite under ``var/``, django-q2's ORM broker, and the
local Gemini and Stripe emulators on loopback. ``.env.example`` lists every variable.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()
VAR_DIR = env.path("BUNCH_VAR_DIR", BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Prometheus multiprocess mode: every web and worker process of this host writes its
# counters here and /metrics adds them up (core/metrics.py). Set before anything imports
# prometheus_client. `make run` empties it at start.
METRICS_DIR = env.path("PROMETHEUS_MULTIPROC_DIR", VAR_DIR / "metrics")
METRICS_DIR.mkdir(parents=True, exist_ok=True)
env.export("PROMETHEUS_MULTIPROC_DIR", str(METRICS_DIR))
# /metrics answers 404 unless this is set and sent as `Authorization: Bearer <token>`.
BUNCH_METRICS_TOKEN = env.str("BUNCH_METRICS_TOKEN", "")

DEBUG = env.bool("DJANGO_DEBUG", True)

_DEV_SECRET_KEY = "django-insecure-bunch-development-key-never-use-in-production"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", _DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

if not DEBUG:
    if SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set to a random string of at least 50 characters "
            "when DJANGO_DEBUG=false (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`)."
        )
    if not env.is_set("DJANGO_ALLOWED_HOSTS"):
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS must list the host names this site serves "
            "(comma-separated) when DJANGO_DEBUG=false."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "tenants",
    "billing",
    "webhooks",
    "generation",
    "batches",
    "ops",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "ops.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.current_tenant",
            ],
        },
    },
]

# Database ------------------------------------------------------------------------------

_SQLITE_OPTIONS = {
    # Measured with django-q2 (shared/reference/django-q2.md): Django's default SQLite
    # options silently dropped ~43 % of task results with "database is locked".
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
    ),
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

if env.is_set("DATABASE_URL"):
    _db = env.db_url("DATABASE_URL")
    if not _db["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL.")
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 60)
    _db["CONN_HEALTH_CHECKS"] = True
else:
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        # BUNCH_SQLITE_PATH points a worker subprocess at a test database.
        "NAME": env.path("BUNCH_SQLITE_PATH", VAR_DIR / "db.sqlite3"),
        "OPTIONS": _SQLITE_OPTIONS,
        # A file, not :memory:, so that a django-q2 cluster in another process sees the
        # same test database.
        "TEST": {"NAME": VAR_DIR / "test-db.sqlite3"},
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache, queue ------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

Q_CLUSTER: dict[str, object] = {
    "name": "bunch",
    "workers": env.int("BUNCH_Q_WORKERS", 4),
    "queue_limit": env.int("BUNCH_Q_QUEUE_LIMIT", 4),
    "bulk": 1,
    # The queue is only a doorbell: job rows are the truth, and a sweeper re-enqueues
    # jobs left behind, so a redelivered task is harmless and a lost one is recovered.
    "timeout": env.int("BUNCH_Q_TIMEOUT", 300),
    "retry": env.int("BUNCH_Q_RETRY", 600),
    "max_attempts": 3,
    "ack_failures": True,
    "save_limit": 0,
    "recycle": 500,
    "catch_up": False,
    "poll": 0.2,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Outside services --------------------------------------------------------------------

GEMINI_API_KEY = env.str("GEMINI_API_KEY", "")
# Without a key of its own the app talks to the local emulator; with one (and no base
# URL) it talks to Google.
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", "" if GEMINI_API_KEY else "http://127.0.0.1:8401")
if not GEMINI_API_KEY:
    GEMINI_API_KEY = "emulator-key"
GEMINI_TIMEOUT_S = env.float("GEMINI_TIMEOUT_S", 120.0)

STRIPE_API_KEY = env.str("STRIPE_API_KEY", "")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", "" if STRIPE_API_KEY else "http://127.0.0.1:8402")
if not STRIPE_API_KEY:
    STRIPE_API_KEY = "sk_test_emulator"
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", "whsec_emulator_development_secret")
BILLING_ENABLED = env.bool("BUNCH_BILLING_ENABLED", True)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", 2)
STRIPE_TIMEOUT_S = env.float("STRIPE_TIMEOUT_S", 20.0)

# Job pipeline (see generation/runner.py and docs/performance.md).
# A web process reads an API key (with its tenant and plan) at most this often; a change
# made in another process takes effect within it (tenants/keycache.py). 0: every request.
BUNCH_API_KEY_CACHE_S = env.float("BUNCH_API_KEY_CACHE_S", 2.0)
BUNCH_JOB_LEASE_S = env.float("BUNCH_JOB_LEASE_S", 120.0)
# How often each worker process writes its heartbeat (status page, /readyz).
BUNCH_HEARTBEAT_S = env.float("BUNCH_HEARTBEAT_S", 15.0)
BUNCH_JOBS_PER_TASK = env.int("BUNCH_JOBS_PER_TASK", 32)
BUNCH_CALLS_PER_TASK = env.int("BUNCH_CALLS_PER_TASK", 64)
BUNCH_TASK_BUDGET_S = env.float("BUNCH_TASK_BUDGET_S", 60.0)
# A web process rings the workers' doorbell at most this often for new jobs; the loop a
# doorbell starts keeps looking at the queue until LINGER s after the ring (> COALESCE).
BUNCH_DOORBELL_COALESCE_S = env.float("BUNCH_DOORBELL_COALESCE_S", 0.25)
BUNCH_DOORBELL_LINGER_S = env.float("BUNCH_DOORBELL_LINGER_S", 1.5)
if BUNCH_DOORBELL_LINGER_S <= BUNCH_DOORBELL_COALESCE_S:
    raise ImproperlyConfigured(
        "BUNCH_DOORBELL_LINGER_S must be longer than BUNCH_DOORBELL_COALESCE_S, or a job "
        "whose ring was coalesced could be missed until the sweeper finds it."
    )
BUNCH_PROVIDER_MAX_ATTEMPTS = env.int("BUNCH_PROVIDER_MAX_ATTEMPTS", 4)
BUNCH_PROVIDER_BACKOFF_S = env.float("BUNCH_PROVIDER_BACKOFF_S", 1.0)
BUNCH_PROVIDER_BACKOFF_MAX_S = env.float("BUNCH_PROVIDER_BACKOFF_MAX_S", 30.0)

# Batch mode (batches/dispatch.py): inline requests below Google's 20 MB limit,
# a JSONL file through the Files API above it.
BUNCH_BATCH_INLINE_MAX_BYTES = env.int("BUNCH_BATCH_INLINE_MAX_BYTES", 20 * 1024 * 1024)
BUNCH_BATCH_MAX_REQUESTS = env.int("BUNCH_BATCH_MAX_REQUESTS", 200)
BUNCH_BATCH_MAX_AGE_HOURS = env.int("BUNCH_BATCH_MAX_AGE_HOURS", 48)

# Webhooks out to loopback/private addresses are refused unless allowed (development).
WEBHOOKS_ALLOW_PRIVATE = env.bool("BUNCH_WEBHOOKS_ALLOW_PRIVATE", DEBUG)

# Auth, i18n, static, media -----------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", "Bunch <no-reply@bunch.localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env.path("BUNCH_MEDIA_ROOT", VAR_DIR / "media")
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiKeyAuthentication",
        "tenants.authentication.DashboardSessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.TenantRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.HasActiveTenant"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bunch API",
    "DESCRIPTION": "Generate image assets in bulk with Gemini image models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"WorkStatusEnum": "generation.models.WorkStatus"},
}

# Rate limits are shared by all web processes: the database by default, Redis when set.
RATE_LIMIT_BACKEND = "redis" if REDIS_URL else "database"

# Security ----------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT={LOG_FORMAT!r} is not valid: json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {
            "()": "config.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s%(context)s %(message)s",
        },
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "google_genai": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},
    },
}
