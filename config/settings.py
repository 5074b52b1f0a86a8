"""Settings for Bunch.

Every value comes from the environment through ``config.env`` and has a default that runs
on a laptop with nothing installed: SQLite under ``var/``, django-q2's ORM broker, and the
local Gemini and Stripe emulators on loopback. ``.env.example`` lists every variable.
"""

from __future__ import annotations

import os
import tempfile
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
if env.is_set("PYTEST_VERSION"):  # (pytest sets it for its session and what that starts)
    # Each test session counts in a fresh directory of its own, which the processes it
    # starts (workers, servers) inherit: two runs on one host (the SQLite and PostgreSQL
    # passes, a `make run`) would otherwise add each other's calls into their figures.
    # Under pytest-xdist each worker process is a session of its own (PYTEST_XDIST_WORKER).
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not env.is_set("BUNCH_TEST_METRICS_DIR") or env.str("BUNCH_TEST_METRICS_OF", "") != _worker:
        (VAR_DIR / "test-metrics").mkdir(exist_ok=True)
        _session = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=VAR_DIR / "test-metrics")
        env.export("BUNCH_TEST_METRICS_DIR", _session)  # (tests/conftest.py removes it)
        env.export("BUNCH_TEST_METRICS_OF", _worker)
    METRICS_DIR = env.path("BUNCH_TEST_METRICS_DIR", METRICS_DIR)
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
    "accounts",
    "tenants",
    "billing",
    "audit",
    "webhooks",
    "generation",
    "series",
    "batches",
    "ops",
]

MIDDLEWARE = [
    "config.middleware.SyncSlotsMiddleware",
    "config.middleware.AsyncStreamingMiddleware",
    "config.middleware.RequestIdMiddleware",
    "ops.middleware.RequestMetricsMiddleware",
    "config.limits.BodySizeLimitMiddleware",
    "audit.context.AuditContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.sessions.AbsoluteSessionLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.csp.ContentSecurityPolicyMiddleware",
    "tenants.middleware.RateLimitHeadersMiddleware",
    "config.middleware.DesignedErrorPagesMiddleware",
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


def _sqlite(path: Path, test_path: Path) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": _SQLITE_OPTIONS,
        # A file, not :memory:, so that a django-q2 cluster in another process sees the
        # same test database.
        "TEST": {"NAME": test_path},
    }


if env.is_set("DATABASE_URL"):
    _db = env.database("DATABASE_URL")
    if _db["ENGINE"].endswith("sqlite3"):
        _path = Path(_db["NAME"]).expanduser().resolve()
        _path.parent.mkdir(parents=True, exist_ok=True)
        _db = _sqlite(_path, _path.with_name(f"test-{_path.name}"))
    elif env.bool("BUNCH_ASGI", False):
        # The ASGI web runs each request's sync code in a short-lived thread; a connection
        # kept per thread would be opened per request and left for the garbage collector.
        # A pool per process hands them over instead (config/asgi.py sets BUNCH_ASGI).
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"] = {
            "pool": {
                "min_size": 1,
                "max_size": env.int("DATABASE_POOL_MAX", 16),
                "timeout": env.float("DATABASE_POOL_TIMEOUT_S", 10.0),
            }
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 60)
        _db["CONN_HEALTH_CHECKS"] = True
    if _db["ENGINE"].endswith("postgresql"):
        # No parallel plans for Bunch's own queries (pages, stores, claims): a parallel plan
        # starts worker processes for each query, 10-30 ms here, which the planner
        # counts as nearly free; a page that walks an index and stops at its LIMIT was
        # planned in parallel at 10M rows and took twice as long (docs/performance.md,
        # reads, fifth pass). An operator's one-off reports can ask for them again
        # (`SET max_parallel_workers_per_gather`), or set this to the server's default.
        _workers = env.int("DATABASE_MAX_PARALLEL_WORKERS_PER_GATHER", 0)
        _db.setdefault("OPTIONS", {})["options"] = f"-c max_parallel_workers_per_gather={_workers}"
else:
    # BUNCH_SQLITE_PATH points a worker subprocess at a test database.
    _db = _sqlite(
        env.path("BUNCH_SQLITE_PATH", VAR_DIR / "db.sqlite3"), VAR_DIR / "test-db.sqlite3"
    )
if _db["ENGINE"].endswith("sqlite3") and env.bool("BUNCH_ASGI", False):
    # The ASGI web runs sync code in a fixed pool of threads (config/asgi_front.py): a
    # SQLite connection kept per pool thread spares opening one (and its PRAGMAs) per
    # request, measured at 15-20 % of a web process's CPU in the waits benchmark.
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 300)
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
# Content Credentials (C2PA): a PEM file of the root certificates whose signers count as
# trusted, e.g. the official C2PA trust list. Unset: every intact manifest reads as
# "valid" (unrecognized issuer). `make run` points it at the Gemini emulator's test root;
# never put a test root in production's list.
C2PA_TRUST_ANCHORS = (
    str(env.path("C2PA_TRUST_ANCHORS", BASE_DIR)) if env.is_set("C2PA_TRUST_ANCHORS") else ""
)
# The provider budget every worker shares, per model (generation/budget.py); 0 = no limit.
# Set them to the project's limits in Google AI Studio, or a little under.
GEMINI_MAX_IN_FLIGHT = env.int("GEMINI_MAX_IN_FLIGHT", 0)
GEMINI_RPM = env.int("GEMINI_RPM", 0)
GEMINI_SPEND_PER_10_MIN_USD = env.float("GEMINI_SPEND_PER_10_MIN_USD", 0.0)
# A budget slot whose worker died comes back after this long (longer than any call).
BUNCH_BUDGET_LEASE_S = env.float("BUNCH_BUDGET_LEASE_S", GEMINI_TIMEOUT_S + 15)
# Where the budget lives: "redis" (BUNCH_BUDGET_REDIS_URL, by default REDIS_URL) when a
# Redis is set, else "database" (generation/budget.py, generation/budget_redis.py).
BUNCH_BUDGET_REDIS_URL = env.str("BUNCH_BUDGET_REDIS_URL", REDIS_URL)
BUNCH_BUDGET_BACKEND = env.str(
    "BUNCH_BUDGET_BACKEND", "redis" if BUNCH_BUDGET_REDIS_URL else "database"
)
BUNCH_BUDGET_REDIS_PREFIX = env.str("BUNCH_BUDGET_REDIS_PREFIX", "bunch:budget:")
if BUNCH_BUDGET_BACKEND not in ("database", "redis") or (
    BUNCH_BUDGET_BACKEND == "redis" and not BUNCH_BUDGET_REDIS_URL
):
    raise ImproperlyConfigured(
        'BUNCH_BUDGET_BACKEND must be "database" or "redis" (with REDIS_URL or '
        "BUNCH_BUDGET_REDIS_URL set)."
    )
if min(GEMINI_MAX_IN_FLIGHT, GEMINI_RPM, GEMINI_SPEND_PER_10_MIN_USD) < 0:
    raise ImproperlyConfigured(
        "GEMINI_MAX_IN_FLIGHT, GEMINI_RPM and GEMINI_SPEND_PER_10_MIN_USD must be 0 (no limit) "
        "or more."
    )

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
# A worker process's thread sweeps (expired leases back to the queue, lost doorbells rung,
# lost quota moves settled) when no process did for this long (generation/sweeper.py);
# 0: only the generation.sweep schedule, whose task waits behind the job doorbells.
BUNCH_SWEEP_EVERY_S = env.float("BUNCH_SWEEP_EVERY_S", 10.0)
# How often each worker process writes its heartbeat (status page, /readyz).
BUNCH_HEARTBEAT_S = env.float("BUNCH_HEARTBEAT_S", 15.0)
BUNCH_JOBS_PER_TASK = env.int("BUNCH_JOBS_PER_TASK", 32)
BUNCH_CALLS_PER_TASK = env.int("BUNCH_CALLS_PER_TASK", 64)
# Threads (each with its connection) for a worker loop's database work (generation/dbthreads.py);
# 1: none, the task's own thread. Off by default: with 4, `make chaos`'s database scenario
# left quota reserved (see the module's docstring).
BUNCH_WORKER_DB_THREADS = env.int("BUNCH_WORKER_DB_THREADS", 1)
# How long a worker process's thread may hold the GIL while another waits for it
# (`sys.setswitchinterval`, ms; Python's own default is 5): see generation/apps.py.
BUNCH_WORKER_GIL_SWITCH_MS = env.float("BUNCH_WORKER_GIL_SWITCH_MS", 5.0)
BUNCH_TASK_BUDGET_S = env.float("BUNCH_TASK_BUDGET_S", 60.0)
# SIGTERM to a worker host's `qcluster`: calls in flight may run this long, then are cut
# off and their jobs handed back to the queue (generation/shutdown.py). Give the process
# manager's stop timeout this plus ~10 s before it sends SIGKILL.
BUNCH_WORKER_STOP_S = env.float("BUNCH_WORKER_STOP_S", 20.0)
if BUNCH_WORKER_STOP_S < 0:
    raise ImproperlyConfigured("BUNCH_WORKER_STOP_S must be 0 (hand back at once) or more.")
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
# A 429 sends the job back to its queue without spending an attempt; this many times at most.
BUNCH_PROVIDER_MAX_DEFERRALS = env.int("BUNCH_PROVIDER_MAX_DEFERRALS", 50)
BUNCH_PROVIDER_BACKOFF_S = env.float("BUNCH_PROVIDER_BACKOFF_S", 1.0)
BUNCH_PROVIDER_BACKOFF_MAX_S = env.float("BUNCH_PROVIDER_BACKOFF_MAX_S", 30.0)

# Web (config/slots.py): synchronous request work at once per web process under ASGI, and
# how many of those slots waiting work (Prefer: wait, event streams) leaves to the rest.
BUNCH_WEB_SYNC_SLOTS = env.int("BUNCH_WEB_SYNC_SLOTS", 8)
BUNCH_WEB_SYNC_SLOTS_KEPT = env.int("BUNCH_WEB_SYNC_SLOTS_KEPT", 2)
if not 0 <= BUNCH_WEB_SYNC_SLOTS_KEPT < BUNCH_WEB_SYNC_SLOTS:
    raise ImproperlyConfigured(
        "BUNCH_WEB_SYNC_SLOTS_KEPT must be at least 0 and less than BUNCH_WEB_SYNC_SLOTS."
    )

# An event stream (…/events) ends after this long without its final event; the client
# reconnects with Last-Event-ID and goes on where it was (generation/streams.py).
BUNCH_EVENTS_MAX_S = env.float("BUNCH_EVENTS_MAX_S", 600.0)
if BUNCH_EVENTS_MAX_S <= 0:
    raise ImproperlyConfigured("BUNCH_EVENTS_MAX_S must be a number of seconds above 0.")

# Batch mode (batches/dispatch.py): inline requests below Google's 20 MB limit,
# a JSONL file through the Files API above it.
BUNCH_BATCH_INLINE_MAX_BYTES = env.int("BUNCH_BATCH_INLINE_MAX_BYTES", 20 * 1024 * 1024)
BUNCH_BATCH_MAX_REQUESTS = env.int("BUNCH_BATCH_MAX_REQUESTS", 200)
BUNCH_BATCH_MAX_AGE_HOURS = env.int("BUNCH_BATCH_MAX_AGE_HOURS", 48)

# Webhooks out go to public addresses only (webhooks/safe_http.py). Loopback can be
# allowed for local development; never with DEBUG off.
WEBHOOKS_ALLOW_LOOPBACK = env.bool("BUNCH_WEBHOOKS_ALLOW_LOOPBACK", DEBUG)
if WEBHOOKS_ALLOW_LOOPBACK and not DEBUG:
    raise ImproperlyConfigured(
        "BUNCH_WEBHOOKS_ALLOW_LOOPBACK is for local development: it cannot be on when "
        "DJANGO_DEBUG=false."
    )
# After a secret rotation, deliveries are signed with the old secret too for this long.
BUNCH_WEBHOOK_SECRET_OVERLAP_S = env.int("BUNCH_WEBHOOK_SECRET_OVERLAP_S", 24 * 3600)

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
# Images, uploads and thumbnails: the filesystem under MEDIA_ROOT, or S3-compatible object
# storage with BUNCH_STORAGE_URL=s3://bucket/prefix (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY as boto3 reads them).
STORAGES = {
    "default": env.storage("BUNCH_STORAGE_URL"),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
# API bodies (config/limits.py): 1 MB, except a batch of up to 10,000 prompts.
BUNCH_API_MAX_BODY_BYTES = env.int("BUNCH_API_MAX_BODY_BYTES", 1024 * 1024)
BUNCH_API_BODY_LIMITS = {"/api/v1/batches": DATA_UPLOAD_MAX_MEMORY_SIZE}

# API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiKeyAuthentication",
        "tenants.authentication.DashboardSessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.TenantRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.HasActiveTenant"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only; the image upload takes multipart/form-data (generation/api.py).
    "DEFAULT_PARSER_CLASSES": ["config.limits.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.schema.BunchAutoSchema",
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
    "ENUM_NAME_OVERRIDES": {
        "WorkStatusEnum": "generation.models.WorkStatus",
        "JobModeEnum": "core.catalog.Mode",
        "BatchModeEnum": [("batch", "batch"), ("realtime", "realtime")],
        "FrameStatusEnum": "series.serializers.FRAME_STATUSES",
    },
}

# Rate limits are shared by all web processes (tenants/ratelimit.py): Redis when set, else
# PostgreSQL's table, else on SQLite a file of their own beside the database, off its lock.
RATE_LIMIT_BACKEND = (
    "redis" if REDIS_URL else "sqlite" if _db["ENGINE"].endswith("sqlite3") else "database"
)

# Security ----------------------------------------------------------------------------

CSRF_FAILURE_VIEW = "config.errors.csrf_failure"
# Dashboard sessions: 30 idle minutes (renewed by each request), 12 hours at most from
# sign-in (tenants/sessions.py); Django's login() gives a new session key.
SESSION_COOKIE_AGE = env.int("BUNCH_SESSION_IDLE_S", 30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
BUNCH_SESSION_MAX_AGE_S = env.int("BUNCH_SESSION_MAX_AGE_S", 12 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # the dashboard's JavaScript reads the token from a <meta>
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Images served from another origin (object storage) need it listed here.
BUNCH_CSP_EXTRA_IMG_SRC = env.list("BUNCH_CSP_EXTRA_IMG_SRC", [])
# Sign-in lock-out (tenants/lockout.py) and API-key failures per address.
BUNCH_LOGIN_FAILURE_LIMIT = env.int("BUNCH_LOGIN_FAILURE_LIMIT", 5)
BUNCH_LOGIN_LOCKOUT_S = env.int("BUNCH_LOGIN_LOCKOUT_S", 15 * 60)
BUNCH_API_KEY_FAILURES_PER_MINUTE = env.int("BUNCH_API_KEY_FAILURES_PER_MINUTE", 20)
# How many proxies in front of the app append to X-Forwarded-For (0: use REMOTE_ADDR).
BUNCH_TRUSTED_PROXIES = env.int("BUNCH_TRUSTED_PROXIES", 0)
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # __Host-: sent only over HTTPS, for this host only, for every path.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
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
        "botocore": {"level": "WARNING"},
    },
}
