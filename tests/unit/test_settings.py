"""Settings read from the environment: each switch loads the module afresh with a given env."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "project" / "settings.py"

# Every variable these tests switch on or off; cleared first so the machine's env can't leak in.
SWITCHES = (
    "DATABASE_URL",
    "REDIS_URL",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "KAKAO_CLIENT_ID",
    "KAKAO_CLIENT_SECRET",
    "SQLITE_PATH",
    "TEST_DATABASE_NAME",
    "CHANNEL_LAYER_PREFIX",
    "ACCOUNT_EMAIL_VERIFICATION",
    "CHANNEL_LAYER_KIND",
    "CHANNEL_LAYER_READER",
    "REDIS_MAX_CONNECTIONS",
    "REDIS_POOL_TIMEOUT",
    "AI_HTTP_CLIENT",
)


@pytest.fixture
def load_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """load_settings(**env) -> the settings module's namespace, loaded with that environment."""

    def load(**env: str) -> dict[str, Any]:
        for name in SWITCHES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("VAR_DIR", str(tmp_path))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return load


def test_sign_up_confirms_the_address_by_code_so_it_cannot_tell_who_has_an_account() -> None:
    assert settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory"
    assert settings.ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED is True
    assert settings.ACCOUNT_PREVENT_ENUMERATION is True
    assert {"email"} == settings.ACCOUNT_LOGIN_METHODS
    assert settings.ACCOUNT_UNIQUE_EMAIL is True


def test_social_login_never_attaches_by_email() -> None:
    from allauth.socialaccount import app_settings

    assert settings.SOCIALACCOUNT_EMAIL_AUTHENTICATION is False
    assert settings.SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT is False
    assert app_settings.EMAIL_AUTHENTICATION is False
    assert app_settings.EMAIL_AUTHENTICATION_AUTO_CONNECT is False


def test_failed_logins_are_rate_limited_per_address() -> None:
    from allauth.account import app_settings

    assert "/key" in settings.ACCOUNT_RATE_LIMITS["login_failed"]
    assert app_settings.RATE_LIMITS["login_failed"] == settings.ACCOUNT_RATE_LIMITS["login_failed"]


def test_no_social_provider_without_client_ids(load_settings: Any) -> None:
    assert load_settings()["SOCIALACCOUNT_PROVIDERS"] == {}


def test_github_client_id_configures_github_only(load_settings: Any) -> None:
    providers = load_settings(GITHUB_CLIENT_ID="gh-id", GITHUB_CLIENT_SECRET="gh-secret")[
        "SOCIALACCOUNT_PROVIDERS"
    ]

    assert set(providers) == {"github"}
    assert providers["github"]["APPS"] == [{"client_id": "gh-id", "secret": "gh-secret"}]
    assert providers["github"]["SCOPE"] == ["user:email"]


def test_kakao_client_id_configures_kakao(load_settings: Any) -> None:
    providers = load_settings(KAKAO_CLIENT_ID="kk-id", KAKAO_CLIENT_SECRET="kk-secret")[
        "SOCIALACCOUNT_PROVIDERS"
    ]

    assert set(providers) == {"kakao"}
    assert "account_email" in providers["kakao"]["SCOPE"]


def test_without_database_url_sqlite_in_wal_mode_is_used(
    load_settings: Any, tmp_path: Path
) -> None:
    db = load_settings()["DATABASES"]["default"]

    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(db["NAME"]).parent == tmp_path
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    # The test database is a file (a daphne subprocess must see it), one per process.
    assert db["TEST"]["NAME"].endswith(".sqlite3")


def test_database_url_selects_postgresql(load_settings: Any) -> None:
    db = load_settings(DATABASE_URL="postgres://app:pw@db.internal:5433/practalk")["DATABASES"][
        "default"
    ]

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == (
        "db.internal",
        5433,
        "practalk",
        "app",
    )
    assert db["CONN_HEALTH_CHECKS"] is True


def test_redis_url_selects_the_redis_channel_layer_and_cache(load_settings: Any) -> None:
    loaded = load_settings(REDIS_URL="redis://cache.internal:6379/3")

    layer = loaded["CHANNEL_LAYERS"]["default"]
    # channels-redis's list layer with a capped, waiting pool and one reader per process.
    assert layer["BACKEND"] == "project.layers.PooledRedisChannelLayer"
    assert (layer["CONFIG"]["max_connections"], layer["CONFIG"]["pool_timeout"]) == (50, 5.0)
    assert layer["CONFIG"]["shared_reader"] is True  # one reader per process
    # A read timeout longer than channels_redis's 5 s blocking pop: idle sockets live on.
    assert layer["CONFIG"]["hosts"] == [
        {"address": "redis://cache.internal:6379/3", "socket_timeout": 10}
    ]
    cache = loaded["CACHES"]["default"]
    # Django's RedisCache, answering from local memory while Redis is down (project/cache.py).
    from django.core.cache.backends.redis import RedisCache
    from django.utils.module_loading import import_string

    assert issubclass(import_string(cache["BACKEND"]), RedisCache)
    assert cache["LOCATION"] == "redis://cache.internal:6379/3"
    assert cache["OPTIONS"]["pool_class"] == "redis.BlockingConnectionPool"
    assert cache["OPTIONS"]["max_connections"] == 50


def test_the_redis_pools_cap_comes_from_the_environment(load_settings: Any) -> None:
    loaded = load_settings(
        REDIS_URL="redis://cache.internal:6379/3",
        REDIS_MAX_CONNECTIONS="8",
        REDIS_POOL_TIMEOUT="2.5",
        CHANNEL_LAYER_READER="per-receive",
    )

    config = loaded["CHANNEL_LAYERS"]["default"]["CONFIG"]
    assert (config["max_connections"], config["pool_timeout"]) == (8, 2.5)
    assert config["shared_reader"] is False  # channels-redis's own receive, on request
    assert loaded["CACHES"]["default"]["OPTIONS"]["max_connections"] == 8


def test_without_redis_url_everything_stays_in_process(load_settings: Any) -> None:
    loaded = load_settings()

    layer = loaded["CHANNEL_LAYERS"]["default"]["BACKEND"]
    assert layer == "project.layers.ThrottledInMemoryChannelLayer"
    assert loaded["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


def test_replies_are_read_through_aiohttp_unless_httpx_is_asked_for(load_settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    assert load_settings()["AI_HTTP_CLIENT"] == "aiohttp"
    assert load_settings(AI_HTTP_CLIENT="httpx")["AI_HTTP_CLIENT"] == "httpx"
    with pytest.raises(ImproperlyConfigured):
        load_settings(AI_HTTP_CLIENT="requests")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), (" on ", True), ("0", False), ("no", False)],
)
def test_env_bool_reads_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    from project.settings import env_bool

    monkeypatch.setenv("PRACTALK_FLAG", raw)
    assert env_bool("PRACTALK_FLAG") is expected


def test_env_bool_uses_the_default_when_unset_or_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    from project.settings import env_bool

    monkeypatch.delenv("PRACTALK_FLAG", raising=False)
    assert env_bool("PRACTALK_FLAG", True) is True
    monkeypatch.setenv("PRACTALK_FLAG", "  ")
    assert env_bool("PRACTALK_FLAG", True) is True


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    from project.settings import env_list

    monkeypatch.setenv("PRACTALK_HOSTS", " a.example.com, ,b.example.com ,")
    assert env_list("PRACTALK_HOSTS") == ["a.example.com", "b.example.com"]
