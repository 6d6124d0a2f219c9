"""Puna's one settings module: everything that varies between machines comes from the environment.

`PUNA_ENV` is `production` unless said otherwise, so a deploy that forgets it fails closed
(no debug, secrets required) instead of running with development defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Lets generic admin/queryset classes be subscripted at runtime, as the type stubs describe them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

PUNA_ENV: str = env.str("PUNA_ENV", default="production")
if PUNA_ENV not in {"production", "development", "test"}:
    raise ImproperlyConfigured(
        f"PUNA_ENV must be production, development or test, not {PUNA_ENV!r}."
    )
PRODUCTION = PUNA_ENV == "production"


def _required_in_production(name: str, dev_default: str) -> str:
    value: str = env.str(name, default="")
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(
            f"{name} is required when PUNA_ENV=production. Set it in the environment "
            f"(or set PUNA_ENV=development for local work)."
        )
    return dev_default


DEBUG: bool = env.bool("DEBUG", default=PUNA_ENV == "development")
SECRET_KEY = _required_in_production("SECRET_KEY", "insecure-development-key-" + "x" * 40)

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
# Railway's health checker calls from this host; it must reach /readyz in every environment.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "healthcheck.railway.app"]
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Render names each web service's public host; accept it without extra configuration.
RENDER_EXTERNAL_HOSTNAME: str = env.str("RENDER_EXTERNAL_HOSTNAME", default="")
if RENDER_EXTERNAL_HOSTNAME:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, RENDER_EXTERNAL_HOSTNAME]
    CSRF_TRUSTED_ORIGINS = [*CSRF_TRUSTED_ORIGINS, f"https://{RENDER_EXTERNAL_HOSTNAME}"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "procrastinate.contrib.django",
    "tenants",
    "feedback",
    "inference",
    "monitoring",
    "reports",
]

MIDDLEWARE = [
    "saas.middleware.OrgContextResetMiddleware",
    "monitoring.middleware.MonitoringMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "saas.middleware.RequestBodyLimitMiddleware",
    "saas.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "saas.urls"
WSGI_APPLICATION = "saas.wsgi.application"
ASGI_APPLICATION = "saas.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "saas" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.orgs",
            ],
        },
    },
]

# --- Database: PostgreSQL everywhere -------------------------------------------------------
# `make run`/`make test` export DATABASE_URL for an embedded PostgreSQL when none is given.
if not env.str("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Puna runs on PostgreSQL only: use `make run` / `make test` "
        "(they start an embedded PostgreSQL under .data/) or point DATABASE_URL at a server."
    )
DATABASES = {"default": env.db_url("DATABASE_URL")}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...).")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].update(
    {
        # Fail fast instead of hanging a worker when PostgreSQL is unreachable.
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT", default=5),
    }
)
# No statement runs or waits for a lock longer than these (seconds, 0 = no limit), so a request
# stuck on a slow query or a lock queue gets a 503 (saas/errors.py) before gunicorn's timeout
# (30 s) kills its worker. Raise them for a migration or a job that needs longer.
_DB_TIMEOUTS = (
    f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT', default=20) * 1000} "
    f"-c lock_timeout={env.int('DB_LOCK_TIMEOUT', default=10) * 1000}"
)
DATABASES["default"]["OPTIONS"]["options"] = " ".join(
    filter(None, [DATABASES["default"]["OPTIONS"].get("options", ""), _DB_TIMEOUTS])
)
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_puna")}
# Row-level security (tenants/rls.py) only binds a role that neither owns the tables nor bypasses
# RLS. DATABASE_URL is the database as the platform hands it out, i.e. as its owner; with
# DATABASE_APP_USER set, the app connects to the same database as that role instead, and only
# the release step connects as the owner (DB_AS_OWNER=1: migrate, then `db_app_role` creates and
# grants the app role). Without DATABASE_APP_USER the app connects as the owner and RLS is not
# enforced: `check --deploy --database default` warns (tenants.checks).
DATABASE_APP_USER: str = env.str("DATABASE_APP_USER", default="")
DATABASE_APP_PASSWORD: str = env.str("DATABASE_APP_PASSWORD", default="")
DB_AS_OWNER: bool = env.bool("DB_AS_OWNER", default=False)
if DATABASE_APP_USER and not DB_AS_OWNER:
    DATABASES["default"]["USER"] = DATABASE_APP_USER
    DATABASES["default"]["PASSWORD"] = DATABASE_APP_PASSWORD
# Django's backend plus the per-statement `puna.org_id` setting that RLS reads.
DATABASES["default"]["ENGINE"] = "tenants.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: shared counters for rate limits -------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "saas.cache.FailoverRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="puna"),
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "saas.cache.AtomicDatabaseCache",
            "LOCATION": "puna_cache",
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="puna"),
        }
    }
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = "saas.ratelimits.client_ip"
# How many proxies in front of us append to X-Forwarded-For (1 on Render and Railway).
TRUSTED_PROXY_COUNT: int = env.int("TRUSTED_PROXY_COUNT", default=0)
RATELIMIT_VIEW = "saas.views.ratelimited"
RATELIMIT_ENABLE: bool = env.bool("RATELIMIT_ENABLE", default=True)
# Our cache backends are shared and atomic, which the library's check cannot know.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
LOGIN_RATE: str = env.str("LOGIN_RATE", default="10/m")
PASSWORD_RESET_RATE: str = env.str("PASSWORD_RESET_RATE", default="5/m")
SIGNUP_RATE: str = env.str("SIGNUP_RATE", default="10/h")

# Per-plan API request rate (per key, per minute) and monthly item quota (per org).
PLAN_LIMITS: dict[str, dict[str, Any]] = {
    "free": {
        "rate": env.str("FREE_RATE", default="60/m"),
        "items_per_month": env.int("FREE_ITEMS", default=5_000),
    },
    "team": {
        "rate": env.str("TEAM_RATE", default="600/m"),
        "items_per_month": env.int("TEAM_ITEMS", default=100_000),
    },
    "business": {
        "rate": env.str("BUSINESS_RATE", default="3000/m"),
        "items_per_month": env.int("BUSINESS_ITEMS", default=2_000_000),
    },
}

# --- Accounts ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "tenants.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
INVITATION_TTL_DAYS: int = env.int("INVITATION_TTL_DAYS", default=7)
PASSWORD_RESET_TIMEOUT = 60 * 60 * 3


# --- Email --------------------------------------------------------------------------------------
def _mailer_from_url(name: str, default: str) -> dict[str, Any]:
    """Django 6.1's MAILERS entry from a URL such as smtp+tls://user:pass@host:587."""
    parsed = env.email_url(name, default=default)
    backend = parsed["EMAIL_BACKEND"]
    options: dict[str, Any] = {}
    if backend.endswith("smtp.EmailBackend"):
        options = {
            "host": parsed.get("EMAIL_HOST"),
            "port": parsed.get("EMAIL_PORT"),
            "username": parsed.get("EMAIL_HOST_USER") or "",
            "password": parsed.get("EMAIL_HOST_PASSWORD") or "",
            "use_tls": bool(parsed.get("EMAIL_USE_TLS")),
            "use_ssl": bool(parsed.get("EMAIL_USE_SSL")),
            "timeout": 10,
        }
    elif backend.endswith("filebased.EmailBackend"):
        options = {"file_path": parsed.get("EMAIL_FILE_PATH") or str(BASE_DIR / ".data" / "mail")}
    return {"BACKEND": backend, "OPTIONS": options}


# Production must say how to send mail (invitations, password resets and reports depend on it).
MAILERS = {
    "default": _mailer_from_url("EMAIL_URL", _required_in_production("EMAIL_URL", "consolemail://"))
}
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Puna <no-reply@puna.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["saas.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "saas.openapi.PunaAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "saas.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "saas.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Puna API",
    "DESCRIPTION": "Send feedback in, get it classified and screened. Authenticate with "
    "`Authorization: Bearer <API key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SentimentEnum": "feedback.models.Sentiment",
        "LanguageEnum": "feedback.models.Language",
        "ReviewStatusEnum": "feedback.models.ReviewStatus",
        # Import jobs and training runs share one set of job states.
        "JobStatusEnum": "feedback.models.ImportJob.Status",
        "ModelVersionStatusEnum": "inference.models.VersionStatus",
        "ModelTaskEnum": "inference.models.Task",
        "RoleEnum": "tenants.models.Role",
        "ApiKeyScopeEnum": "tenants.models.ApiKeyScope",
    },
}
# Request bodies above these are refused with 413 before anything parses them.
MAX_REQUEST_BODY_BYTES: int = env.int("MAX_REQUEST_BODY_BYTES", default=5 * 1024 * 1024)
# CSV uploads (API and dashboard) may be larger; matched against the path.
MAX_IMPORT_BYTES: int = env.int("MAX_IMPORT_BYTES", default=50 * 1024 * 1024)
MAX_REQUEST_BODY_BYTES_BY_PATH: dict[str, int] = {
    r"^/api/v1/imports/?$": MAX_IMPORT_BYTES,
    r"^/o/[^/]+/imports/": MAX_IMPORT_BYTES,
}
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

# --- Background work --------------------------------------------------------------------------
# procrastinate runs on the same PostgreSQL; tasks live in each app's tasks.py.
PROCRASTINATE_WORKER_DEFAULTS = {"delete_jobs": "successful"}

# --- Models -----------------------------------------------------------------------------------
ONNX_MODEL_DIR = Path(env.str("ONNX_MODEL_DIR", default=str(BASE_DIR / "onnx_models")))
INFERENCE_THREADS: int = env.int("INFERENCE_THREADS", default=1)

# --- i18n / time ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "saas" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media")))

# --- Security ---------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
# Platform health checks speak plain HTTP to the container; they must not be redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_HTTPONLY = True
# Lax (Django's default, stated so review sees it): cookies ride top-level navigations only, so a
# cross-site form POST arrives without the session; CSRF tokens are the second lock.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Webhooks ---------------------------------------------------------------------------------
# Outside development, webhook URLs that resolve to private or loopback addresses are refused
# (an org must not make Puna call into its own network).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES: bool = env.bool(
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=not PRODUCTION
)

# --- Monitoring -------------------------------------------------------------------------------
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; without a token it is a 404.
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
# How often each process writes its per-minute histograms to PostgreSQL; 0 = never in the
# background (tests flush synchronously).
MONITORING_FLUSH_SECONDS: float = env.float(
    "MONITORING_FLUSH_SECONDS", default=0.0 if PUNA_ENV == "test" else 10.0
)
# Email staff when a route's p95 stays above this many ms for this many consecutive minutes,
# counting only minutes with at least MONITORING_ALERT_MIN_REQUESTS requests.
MONITORING_P95_ALERT_MS: float = env.float("MONITORING_P95_ALERT_MS", default=1000.0)
MONITORING_ALERT_MINUTES: int = env.int("MONITORING_ALERT_MINUTES", default=5)
MONITORING_ALERT_MIN_REQUESTS: int = env.int("MONITORING_ALERT_MIN_REQUESTS", default=5)
LOG_FORMAT: str = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
# --- end Monitoring ---

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "monitoring.logging.PlainFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "monitoring.logging.JsonFormatter"},
    },
    # The filter gives every line, not only ours, the request id and org id.
    "filters": {"request_context": {"()": "monitoring.logging.RequestContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
