"""Django settings for LiveHuman.

Every value that differs between a laptop and production comes from the
environment here, and only here. With no environment at all the platform runs
on embedded defaults: SQLite and the media folder under ``LIVEHUMAN_DATA_DIR``,
the in-process channel layer, and a Celery broker on SQLite (no server).
Setting ``REDIS_URL`` switches both the channel layer and Celery to Redis.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
import redis.exceptions
import structlog
from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

from livehuman_site.log_redaction import redact_secrets

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("LIVEHUMAN_DATA_DIR", BASE_DIR / "data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR (outside git)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Earlier SECRET_KEYs, comma-separated: sessions and signatures made with them stay valid, and the LLM API keys
# encrypted under them stay readable (they are encrypted with a key derived from SECRET_KEY and SALT_KEY).
SECRET_KEY_FALLBACKS = _env_list("SECRET_KEY_FALLBACKS", "")
# Salt of that derivation (a role's LLM API key); changing it makes stored secrets unreadable.
SALT_KEY = os.environ.get("LIVEHUMAN_SALT_KEY", "livehuman-llm-secrets")
DEBUG = _env_bool("DEBUG")
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

# HTTPS in production (README, "Production"): all off by default so http://127.0.0.1:8000 works out of the box.
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (and have the proxy
# set that header itself, never pass the client's through).
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _env_bool("SECURE_COOKIES")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD")
_proxy_ssl_header = _env_list("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if len(_proxy_ssl_header) == 2 else None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "django_prometheus",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: the docs work without a public CDN
    "csp",
    "axes",
    "drf_standardized_errors",
    "livehuman_site",  # its management commands (check_services) and Celery tasks (ping)
    "livehuman_site.tenancy",
    "avatars_app",
    "sessions_app",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first and last: it times the whole request
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "livehuman_site.tenancy.middleware.CurrentTenantMiddleware",
    "avatars_app.middleware.AdminUploadQuotaMiddleware",  # before the CSRF check parses an upload's body
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # after authentication: it turns a lock-out into the response
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# Log-in lock-out (django-axes) for the admin and the site's login form: after AXES_FAILURE_LIMIT failures
# for one user name from one address, that pair is refused for AXES_COOLOFF_TIME hours, right password or not.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_TIME", "0.25"))
AXES_LOCKOUT_PARAMETERS = [_env_list("AXES_LOCKOUT_PARAMETERS", "username,ip_address")]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = int(os.environ.get("AXES_IPWARE_PROXY_COUNT", "0"))  # proxies in front, for the address
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Pages load scripts, styles and images only from this origin, with no inline script or style: an injected
# tag or attribute runs nothing. The chat page needs blob:/data: media for WebRTC and the WebGL canvas, the
# API docs data: images. Tenant files get their own, stricter header (tenancy.views.tenant_media_view).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "media-src": [SELF, "blob:"],
        "connect-src": [SELF],  # includes this origin's ws:/wss: (CSP level 3)
        "font-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [SELF],
    }
}

ROOT_URLCONF = "livehuman_site.urls"
ASGI_APPLICATION = "livehuman_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "livehuman_site.tenancy.context_processors.current_tenant",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout: daphne, the Celery worker and the tests write concurrently.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # A file (not in-memory) test database, one per test run, so that worker and server processes the tests
    # start (Celery, daphne) see the same rows: tests/fixtures/processes.py hands them its URL.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
# The same database engines, instrumented: django-prometheus counts queries, errors and connections per process.
_INSTRUMENTED_ENGINES = {"sqlite3", "postgresql", "mysql"}
_engine = DATABASES["default"]["ENGINE"].rpartition(".")[2]
if DATABASES["default"]["ENGINE"].startswith("django.db.backends.") and _engine in _INSTRUMENTED_ENGINES:
    DATABASES["default"]["ENGINE"] = f"django_prometheus.db.backends.{_engine}"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Uploaded videos go to disk past this size instead of memory; the tenant quota is checked separately.
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REDIS_URL = os.environ.get("REDIS_URL", "")

# After a Redis restart the pooled connections are dead: a command that meets one retries once on a new one,
# instead of failing (and ending the session it served). A Redis that stays down still fails at once.
REDIS_RECONNECT = {"retry_on_error": [redis.exceptions.ConnectionError]}

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5-s socket timeout by default: exactly channels-redis's 5-s BZPOPMIN, so an
            # idle consumer's receive raced its own timeout and crashed the consumer. Read longer than the block.
            # redis-py 8 reads with a 5-s socket timeout by default, exactly channels-redis's 5-s blocking receive:
            # a consumer whose channel stayed quiet that long died of a read timeout. Reads may wait longer.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30, **REDIS_RECONNECT}]},
        }
    }
    # Shared by every daphne worker: API throttle counts must add up across processes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": REDIS_RECONNECT,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = os.environ.get(
    "CELERY_BROKER_URL", REDIS_URL or f"sqla+sqlite:///{DATA_DIR / 'celery-broker.sqlite'}"
)
CELERY_RESULT_BACKEND = os.environ.get(
    "CELERY_RESULT_BACKEND", REDIS_URL or f"db+sqlite:///{DATA_DIR / 'celery-results.sqlite'}"
)
CELERY_TASK_ACKS_LATE = True  # a killed worker's build goes back to the queue
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING below too: the same format and redaction

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "livehuman_site.tenancy.authentication.TenantAPIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["livehuman_site.tenancy.permissions.HasTenant"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "livehuman_site.api_renderers.LiveHumanBrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "livehuman_site.api_pagination.LiveHumanPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "livehuman_site.tenancy.throttling.AnonymousRateThrottle",
        "livehuman_site.tenancy.throttling.CallerRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("LIVEHUMAN_THROTTLE_ANON", "60/min"),
        "user": os.environ.get("LIVEHUMAN_THROTTLE_USER", "1200/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "livehuman_site.api_errors.ErrorFormatAutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
}
DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_FORMATTER_CLASS": "livehuman_site.api_errors.LiveHumanErrorFormatter",
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LiveHuman API",
    "DESCRIPTION": "Tenants' roles, avatars and real-time chat sessions with a lip-synced digital human.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ValidationErrorEnum": "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices",
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
    },
}

# Product settings: defaults live in livehuman_site/conf.py; override any key here or by environment.
LIVEHUMAN = {
    key.removeprefix("LIVEHUMAN_"): value
    for key, value in os.environ.items()
    if key.startswith("LIVEHUMAN_")
    and key not in {"LIVEHUMAN_DATA_DIR", "LIVEHUMAN_SALT_KEY"}
    and not key.startswith("LIVEHUMAN_THROTTLE_")
}

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
# structlog renders every standard-library log line: one JSON object a line (LOG_FORMAT=json, the default, for log
# collectors) or coloured text (LOG_FORMAT=console). Values bound with structlog.contextvars (a live session binds
# session_id and tenant) appear on every line logged in that context, the session's tasks included.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
_LOG_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": _LOG_CHAIN,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,  # after the traceback is text: no secret in a URL reaches any log line
                structlog.processors.JSONRenderer(ensure_ascii=False)
                if LOG_FORMAT == "json"
                else structlog.dev.ConsoleRenderer(colors=False),
            ],
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "aioice": {"level": "WARNING"},
        "aiortc": {"level": "WARNING"},
        "numba": {"level": "WARNING"},
    },
}
