"""Practalk settings: one module, every value from the environment with a safe default.

Every variable is listed with a comment in `.env.example`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Final

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

# Generic classes (ModelAdmin[Persona], ModelForm[User]) subscriptable at run time, as typed.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str = "") -> str:
    """A string from the environment."""
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    """A boolean from the environment: 1/true/yes/on are true."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """An integer from the environment."""
    value = env(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    """A float from the environment."""
    value = env(name)
    return float(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list from the environment."""
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("TESTING", False)

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        # A development-only key: never used when DEBUG is off.
        SECRET_KEY = "django-insecure-practalk-development-only-key-do-not-use-in-production"
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development)."
        )

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG or TESTING else "")
if not DEBUG and not TESTING:
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off.")
    if "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS=* is refused in production: name your hosts.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # daphne first, so `runserver` serves ASGI (websockets included).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.kakao",
    "accounts",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "project.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.gateway.GatewayIdentityMiddleware",
    "accounts.middleware.UserTimezoneMiddleware",
    # After authentication: a signed-in person's saved language beats cookie and browser.
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
WSGI_APPLICATION = None

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
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.template.context_processors.csp",
                "project.context_processors.site",
                "chat.classes.context.my_classes",
                "project.context_processors.quota",
            ],
            "builtins": ["django_htmx.templatetags.django_htmx"],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
# Threads that run the sockets' database calls (chat/dbasync.py): independent pages no longer
# queue on one sync thread. Each has its own connection (PostgreSQL: taken from the pool below;
# see docs/scaling.md). 1: every call on the one thread-sensitive thread.
DB_THREADS = max(1, env_int("DB_THREADS", 4))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0), conn_health_checks=True
        )
    }
    # PostgreSQL: Django's connection pool (psycopg_pool), one per process. Under ASGI every
    # HTTP request runs on a thread of its own, so without it each request connects anew
    # (2.5 ms on loopback, more across a network). At most DB_POOL_MAX_SIZE connections per
    # process: the database pool's threads and the requests in flight share them, and a
    # request waits up to DB_POOL_TIMEOUT seconds for one. DB_POOL=0 turns it off (pgbouncer
    # in session mode, or persistent connections with DB_CONN_MAX_AGE).
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and env_bool(
        "DB_POOL", not DATABASES["default"].get("CONN_MAX_AGE")
    ):
        import psycopg_pool

        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 2,
            "max_size": max(2, env_int("DB_POOL_MAX_SIZE", DB_THREADS + 8)),
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
            # A connection a server restart or a network cut left dead is not handed out.
            "check": psycopg_pool.ConnectionPool.check_connection,
        }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH") or str(VAR_DIR / "practalk.sqlite3"),
            # Keep the connection: a new one re-reads the schema on every socket event
            # (send → model request 15 ms → 8 ms in bench/).
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # Wait for a lock instead of failing at once with "database is locked";
                # IMMEDIATE takes the write lock at BEGIN so two writers never deadlock on upgrade.
                "timeout": env_int("SQLITE_BUSY_TIMEOUT", 20),
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                ),
            },
        }
    }
# Seconds a database-pool thread keeps its connection where DB_CONN_MAX_AGE is 0 (the pool's
# threads are few and long-lived; HTTP request threads still close theirs). 0: never kept.
DB_THREAD_CONN_MAX_AGE = max(0, env_int("DB_THREAD_CONN_MAX_AGE", 60))
# A file, not memory, so a daphne process started by the browser tests sees the same data.
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"]["NAME"] = env(
        # Per process, so test runs side by side don't share (and delete) one file.
        "TEST_DATABASE_NAME",
        str(VAR_DIR / f"test-practalk-{os.getpid()}.sqlite3"),
    )

AUTH_USER_MODEL = "accounts.User"

# --- Channels and cache -------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
CHANNEL_CAPACITY = env_int("CHANNEL_CAPACITY", 500)
# Which channels-redis layer: "list" (RedisChannelLayer: queues per channel, capacity and
# expiry) or "pubsub" (RedisPubSubChannelLayer: one subscription loop per process, nothing kept
# for a page that is not listening). bench part "fanout" measures both side by side.
CHANNEL_LAYER_KIND = env("CHANNEL_LAYER_KIND", "list")
if CHANNEL_LAYER_KIND not in ("list", "pubsub"):
    raise ImproperlyConfigured("CHANNEL_LAYER_KIND must be 'list' or 'pubsub'.")
# Redis connections per process (per pool: the layer's, the cache's), and how long a call
# waits for a free one when all are busy. redis-py's own pools cap at 100 and *fail* past it
# ("Too many connections"): a class of 200 joining at once lost a socket to it (issue 11).
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 50)
REDIS_POOL_TIMEOUT = env_float("REDIS_POOL_TIMEOUT", 5.0)
# "shared" (the default): one reader task per process hands messages to the pages' queues,
# a third of the CPU per delivery and, over two processes, 1,000 members at 10 msg/s p99
# 131-198 ms against 186-891 ms (bench part "fanout", four runs). A Redis restart still
# closes the pages' sockets so they re-join (reliability case F3). "per-receive":
# channels-redis's own receive (two tasks per message per page). See docs/scaling.md.
CHANNEL_LAYER_READER = env("CHANNEL_LAYER_READER", "shared")
if CHANNEL_LAYER_READER not in ("shared", "per-receive"):
    raise ImproperlyConfigured("CHANNEL_LAYER_READER must be 'shared' or 'per-receive'.")
if REDIS_URL and CHANNEL_LAYER_KIND == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            # Its publishes go one at a time through one connection per process (a lock in
            # channels-redis), its subscriptions through one more: no pool to cap.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10}],
                "prefix": env("CHANNEL_LAYER_PREFIX", "practalk"),
            },
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis's list layer with a waiting pool and retries on a Redis blip
            # (project/layers.py).
            "BACKEND": "project.layers.PooledRedisChannelLayer",
            "CONFIG": {
                # redis-py's default 5 s read timeout equals channels_redis's 5 s BZPOPMIN:
                # an idle socket's read timed out first and the consumer died with 1011.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10}],
                "prefix": env("CHANNEL_LAYER_PREFIX", "practalk"),
                "capacity": CHANNEL_CAPACITY,
                "expiry": 60,
                "max_connections": REDIS_MAX_CONNECTIONS,
                "pool_timeout": REDIS_POOL_TIMEOUT,
                "shared_reader": CHANNEL_LAYER_READER == "shared",
            },
        }
    }
if REDIS_URL:
    CACHES = {
        "default": {
            # RedisCache that answers from local memory while Redis is down (project/cache.py):
            # allauth's rate-limit counters live here, and log-in must not 500 with Redis.
            "BACKEND": "project.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CHANNEL_LAYER_PREFIX", "practalk"),
            "OPTIONS": {
                "socket_connect_timeout": env_float("CACHE_REDIS_TIMEOUT", 1.0),
                "socket_timeout": env_float("CACHE_REDIS_TIMEOUT", 1.0),
                # Capped and waiting, like the layer's; a wait past the timeout counts as
                # Redis being down (local memory answers meanwhile).
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": REDIS_MAX_CONNECTIONS,
                "timeout": min(REDIS_POOL_TIMEOUT, env_float("CACHE_REDIS_TIMEOUT", 1.0)),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "project.layers.ThrottledInMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY, "expiry": 60},
        }
    }
    # One process only: rate limits, presence and gateway replay checks live here.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    }

# --- Auth and allauth ---------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
# Sign-up answers the same for a known and a new address (the known address's owner gets an
# e-mail saying someone tried): allauth can only do that when the address must be confirmed,
# so a sign-up is confirmed with a code typed on the next page (no link to click, same tab).
# People who signed in before are not asked at log-in (accounts/stages.py).
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = env_bool("ACCOUNT_EMAIL_VERIFICATION_BY_CODE", True)
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupExtraForm"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_RATE_LIMITS = {
    # allauth's defaults, stated so they are visibly on.
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
# The client address that rate limits count. Off by default: X-Forwarded-For is then ignored
# (anyone can send it). Behind a load balancer every visitor shares REMOTE_ADDR, so one
# person's failed logins would lock everyone out: set the number of proxies you run, or the
# header your proxy sets to the client address (e.g. X-Real-IP, CF-Connecting-IP).
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env("TRUSTED_CLIENT_IP_HEADER") or None
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
# Never attach a social login to an existing account on the strength of an e-mail address.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, Any]] = {}
for _provider, _prefix in (("github", "GITHUB"), ("kakao", "KAKAO")):
    if env(f"{_prefix}_CLIENT_ID"):
        SOCIALACCOUNT_PROVIDERS[_provider] = {
            "APPS": [
                {
                    "client_id": env(f"{_prefix}_CLIENT_ID"),
                    "secret": env(f"{_prefix}_CLIENT_SECRET"),
                }
            ],
            # Ask for the e-mail so the account can be reached; verification is still checked.
            "SCOPE": ["user:email"]
            if _provider == "github"
            else ["account_email", "profile_nickname"],
        }

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# For django.core.mail.backends.filebased.EmailBackend: the folder e-mails are written to.
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Practalk <no-reply@practalk.local>")
# How e-mails name and sign the site ("Hello from Practalk!" … "practalk.example.com"):
# the domain people know, not whatever host a request came in on (127.0.0.1:8801).
SITE_NAME = env("SITE_NAME", "Practalk")
SITE_DOMAIN = env(
    "SITE_DOMAIN",
    next((h.lstrip(".") for h in ALLOWED_HOSTS if h not in _LOCAL_HOSTS), "localhost:8000"),
)

# --- Gateway identity (off unless a secret is set) ------------------------------------------
GATEWAY_SHARED_SECRET = env("GATEWAY_SHARED_SECRET")
GATEWAY_MAX_AGE_SECONDS = env_int("GATEWAY_MAX_AGE_SECONDS", 300)

# --- AI -----------------------------------------------------------------------------------
OPENAI_API_KEY = env("OPENAI_API_KEY")
OPENAI_BASE_URL = env("OPENAI_BASE_URL")
OPENAI_MODEL = env("OPENAI_MODEL", "gpt-4o-mini")
AI_TIMEOUT_SECONDS = env_float("AI_TIMEOUT_SECONDS", 30.0)
AI_MAX_RETRIES = env_int("AI_MAX_RETRIES", 2)
# How replies are read: the SDK's aiohttp client (a quarter less CPU per streamed token), or
# its default httpx one (chat/coach/model_http.py).
AI_HTTP_CLIENT = env("AI_HTTP_CLIENT", "aiohttp")
if AI_HTTP_CLIENT not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured("AI_HTTP_CLIENT must be 'aiohttp' or 'httpx'.")
# The model-written conversation title: one attempt, given up after this (the first answer's stays).
AI_TITLE_TIMEOUT_SECONDS = env_float("AI_TITLE_TIMEOUT_SECONDS", 10.0)
AI_HISTORY_BUDGET_TOKENS = env_int("AI_HISTORY_BUDGET_TOKENS", 3000)
AI_DAILY_LIMIT = env_int("AI_DAILY_LIMIT", 5)
OFFLINE_TOKEN_DELAY = env_float("OFFLINE_TOKEN_DELAY", 0.03)
# How often streamed tokens are flushed to the browser, in seconds. Values under 0.01 are
# raised to 0.01 (chat.coach.broadcast.flush_interval); 0 means a frame per token, for the bench
# and tests only (~4x the CPU per token).
STREAM_FLUSH_INTERVAL = env_float("STREAM_FLUSH_INTERVAL", 0.04)
# A token that comes this long (seconds) after the previous one is flushed at once: the model
# is slow and nothing is queuing, so batching would only delay it. 0 turns this off.
STREAM_IDLE_GAP = env_float("STREAM_IDLE_GAP", 0.005)
# How often a growing reply is written to the database, in seconds.
STREAM_SAVE_INTERVAL = env_float("STREAM_SAVE_INTERVAL", 1.0)
# Seconds a growing reply may go unsaved before it is stored as interrupted (its process
# died). Empty: long enough for every model attempt to time out, at least 120.
REPLY_STALE_SECONDS = env_float("REPLY_STALE_SECONDS", 0.0)

# --- Speech (read aloud, dictation) -------------------------------------------------------
# With a model server configured, replies are read by its speech endpoint and dictation is
# transcribed by its transcription endpoint; without one the browser's own speech is used.
SPEECH_MODEL = env("SPEECH_MODEL", "gpt-4o-mini-tts")
SPEECH_VOICE = env("SPEECH_VOICE", "alloy")
# The stored audio's format: mp3 (small, plays everywhere), or opus, aac, flac, wav.
SPEECH_FORMAT = env("SPEECH_FORMAT", "mp3")
TRANSCRIBE_MODEL = env("TRANSCRIBE_MODEL", "whisper-1")
# An upload larger or a recording longer than these is refused before the model is asked.
DICTATION_MAX_BYTES = env_int("DICTATION_MAX_BYTES", 5 * 1024 * 1024)
DICTATION_MAX_SECONDS = env_int("DICTATION_MAX_SECONDS", 180)
# Synthesised replies and kept recordings (served by views that check access, never directly).
MEDIA_ROOT = Path(env("MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "/media/"

# --- Live chat limits ---------------------------------------------------------------------
MAX_MESSAGE_LENGTH = env_int("MAX_MESSAGE_LENGTH", 4000)
# Finished messages' list items kept rendered per process (0 turns it off): a coach reply about
# 1 KB, an answer with its feedback card about 4 KB, so 20,000 hold up to ~50 MB per process.
MESSAGE_ITEM_CACHE_SIZE = env_int("MESSAGE_ITEM_CACHE_SIZE", 20000)
MAX_FRAME_BYTES = env_int("MAX_FRAME_BYTES", 64 * 1024)
MESSAGES_PER_10S = env_int("MESSAGES_PER_10S", 10)
MAX_SOCKETS_PER_USER = env_int("MAX_SOCKETS_PER_USER", 20)
# What one socket may send (chat/live/limits.py): frames a second and the burst saved up;
# past SOCKET_FRAMES_DROPPED_MAX dropped frames in 10 s the socket is closed with 4429.
SOCKET_FRAMES_PER_SECOND = env_float("SOCKET_FRAMES_PER_SECOND", 10.0)
SOCKET_FRAMES_BURST = env_float("SOCKET_FRAMES_BURST", 40.0)
SOCKET_FRAMES_DROPPED_MAX = env_int("SOCKET_FRAMES_DROPPED_MAX", 500)
# Nesting depth a frame's JSON may have (a real frame has 2).
MAX_FRAME_DEPTH = env_int("MAX_FRAME_DEPTH", 8)
# Room creation, renames and new invite links per person (chat/rooms/limits.py).
ROOMS_CREATED_PER_HOUR = env_int("ROOMS_CREATED_PER_HOUR", 10)
ROOM_CHANGES_PER_HOUR = env_int("ROOM_CHANGES_PER_HOUR", 30)
PRESENCE_TIMEOUT_SECONDS = env_int("PRESENCE_TIMEOUT_SECONDS", 60)
# A room's online list is announced at most once per this many seconds, joins, leaves and
# heartbeats in between coalesced (one frame per join was O(N²) in a big room's join storm).
PRESENCE_INTERVAL = env_float("PRESENCE_INTERVAL", 1.0)

# --- Live classes -------------------------------------------------------------------------
# The activity log goes through a Redis Stream when this is set (REDIS_URL by default),
# read by `manage.py run_activity_consumer`; else (or while Redis is down) written directly.
ACTIVITY_REDIS_URL = env("ACTIVITY_REDIS_URL", REDIS_URL)
ACTIVITY_STREAM = env("ACTIVITY_STREAM", "practalk:activity")
ACTIVITY_BATCH = env_int("ACTIVITY_BATCH", 100)
ACTIVITY_FLUSH_SECONDS = env_float("ACTIVITY_FLUSH_SECONDS", 0.5)
# A coach's dashboard gets the rows that changed at most once per this many seconds.
CLASS_DASHBOARD_BATCH_SECONDS = env_float("CLASS_DASHBOARD_BATCH_SECONDS", 0.2)
# Wrong join codes allowed per person and address in JOIN_CODE_WINDOW_SECONDS.
JOIN_CODE_ATTEMPTS = env_int("JOIN_CODE_ATTEMPTS", 10)
JOIN_CODE_WINDOW_SECONDS = env_int("JOIN_CODE_WINDOW_SECONDS", 600)

# --- I18N / time --------------------------------------------------------------------------
# The language comes from the person's profile, else Django's language cookie (set by the
# switcher in the header), else the browser's Accept-Language, else LANGUAGE_CODE.
LANGUAGE_CODE = env("LANGUAGE_CODE", "en")
# Each language in its own name: the switcher must be readable whatever is active.
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Tests and development serve straight from the app folders, without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG or TESTING

# --- Security (all on in production; each can be tuned from the environment) --------------
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER", True) else None
)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG and not TESTING)
# Load balancers probe health over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG and not TESTING)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG and not TESTING)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG or TESTING else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy. Every script is a file of ours (htmx and its ws extension come from
# django-htmx as files; static/js/app.js), so scripts need no nonce. The two per-person
# <style> blocks (base.html, the room page) carry the request's nonce; htmx's own injected
# indicator style is switched off (meta htmx-config in base.html; the rules are in app.css).
# connect-src gets the page's own ws(s):// origin per request (project/csp.py).
# Social log-in posts to our own URL, which redirects to the provider: browsers check that
# redirect (and the provider's own redirects to its sign-in page) against form-action, so a
# configured provider's authorisation origins are allowed.
_SOCIAL_FORM_ACTIONS = {
    "github": ["https://github.com"],
    "kakao": ["https://kauth.kakao.com", "https://accounts.kakao.com"],
}
CONTENT_SECURITY_POLICY = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [
        CSP.SELF,
        *(url for p in sorted(SOCIALACCOUNT_PROVIDERS) for url in _SOCIAL_FORM_ACTIONS[p]),
    ],
}
if env("CSP_REPORT_URI"):
    CONTENT_SECURITY_POLICY["report-uri"] = [env("CSP_REPORT_URI")]
# Enforced unless CSP_REPORT_ONLY=1 (try a change in report-only first: violations are then
# reported, in the browser's console or to CSP_REPORT_URI, and nothing is blocked). Report-only
# by default with DEBUG=1 only, where Django's error pages use inline styles and scripts.
CSP_REPORT_ONLY = env_bool("CSP_REPORT_ONLY", DEBUG)
SECURE_CSP = {} if CSP_REPORT_ONLY else CONTENT_SECURITY_POLICY
SECURE_CSP_REPORT_ONLY = CONTENT_SECURITY_POLICY if CSP_REPORT_ONLY else {}
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The language cookie (set by the switch in the header) like the session's; no script reads it.
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE: Final = "Lax"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
