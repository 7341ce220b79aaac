"""Hostile users over plain HTTP (issue #15): the admin's log-in, the Content-Security-Policy,
huge ids in URLs, who has an account, the client address behind the load balancer, and
signing in while Redis is down. Results go to docs/reliability.md (tests/reliability_report.py).
"""

from __future__ import annotations

import re
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.core.cache import cache
from django.test import Client

from tests import reliability_report as report
from tests.conftest import PASSWORD

pytest_plugins = ["tests.reliability_report"]
pytestmark = [pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
LOGIN_URL = "/accounts/login/"
SIGNUP_URL = "/accounts/signup/"
TOO_MANY = b"Too many failed login attempts"


@pytest.fixture(autouse=True)
def clean_cache() -> Iterator[None]:
    """allauth's rate-limit counters live in the cache: every case starts from none."""
    cache.clear()
    yield
    cache.clear()


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def log_in(client: Client, email: str, password: str, **headers: str) -> Any:
    return client.post(LOGIN_URL, {"login": email, "password": password}, headers=headers)


def refused_as_too_many(response: Any) -> bool:
    return response.status_code == 429 or TOO_MANY in response.content


# --------------------------------------------------------------------------- H6a admin log-in


def test_h6a_admin_login_is_rate_limited(make_user: Any) -> None:
    staff = make_user(email="staff@example.com", is_staff=True, is_superuser=True)
    with report.case(
        "H6a",
        "30 wrong passwords for a staff account on /admin/login/, then the right one; "
        "then 5 wrong on the log-in page it leads to, then the right one",
    ) as row:
        attacker = Client(REMOTE_ADDR="203.0.113.50")
        answers = [
            attacker.post(
                "/admin/login/?next=/admin/", {"username": staff.email, "password": f"wrong{i}"}
            )
            for i in range(30)
        ]
        right = attacker.post(
            "/admin/login/?next=/admin/", {"username": staff.email, "password": PASSWORD}
        )
        admin_signed_in = signed_in(attacker)
        # Where the admin's log-in now leads: allauth's, with its failed-login limit (5 per
        # 5 minutes for one account), coming back to the admin afterwards.
        redirect = attacker.get("/admin/login/?next=/admin/")
        wrong = [log_in(attacker, staff.email, f"wrong{i}") for i in range(5)]
        limited_right = log_in(attacker, staff.email, PASSWORD)
        staff_limited = refused_as_too_many(limited_right) and not signed_in(attacker)
        # The real staff member, once the window has passed, signs in and reaches the admin.
        cache.clear()
        real = Client(REMOTE_ADDR="198.51.100.9")
        back = log_in(real, staff.email, PASSWORD)
        admin_page = real.get("/admin/")
        row.set(
            result=f"/admin/login/ answers {sorted({a.status_code for a in answers})} "
            f"(redirect to {redirect.headers.get('Location', '')}), the right password there "
            f"{'signed in' if admin_signed_in else 'did not sign in'}; on the log-in page "
            f"after 5 wrong: the right password "
            f"{'refused: too many failed attempts' if staff_limited else 'let through'}; "
            f"after the window: signed in, /admin/ {admin_page.status_code}",
            sent=31 + 6,
        )
        assert not admin_signed_in and right.status_code == 302
        assert {a.status_code for a in answers} == {302}
        assert redirect.status_code == 302
        assert redirect.headers["Location"] == "/accounts/login/?next=%2Fadmin%2F"
        assert all(w.status_code == 200 and not refused_as_too_many(w) for w in wrong[:4])
        assert staff_limited
        assert back.status_code == 302 and back.headers["Location"] == "/"
        assert admin_page.status_code == 200 and b"Site administration" in admin_page.content


def test_admin_refuses_a_signed_in_non_staff_member(make_user: Any) -> None:
    learner = make_user(email="learner@example.com")
    client = Client()
    client.force_login(learner)

    assert client.get("/admin/login/?next=/admin/").status_code == 403
    assert client.get("/admin/").status_code == 302  # the admin index sends to its login


# --------------------------------------------------------------------------- H6b CSP

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def directives(header: str) -> dict[str, str]:
    parts = (d.strip().split(" ", 1) for d in header.split(";") if d.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


def inline_problems(html: str) -> list[str]:
    """What this CSP would block in a page: inline scripts, handlers, style attributes."""
    problems = []
    for match in re.finditer(r"<script\b([^>]*)>", html, re.I):
        if "src=" not in match.group(1):
            problems.append(f"inline script {match.group(0)[:60]}")
    problems += [f"handler {m[:40]}" for m in re.findall(r"<[^>]+\son[a-z]+\s*=[^>]*>", html)]
    problems += [f"style attribute {m[:60]}" for m in re.findall(r"<[^>]+\sstyle\s*=[^>]*>", html)]
    problems += [f"javascript: URL {m[:60]}" for m in re.findall(r"javascript:[^\"']*", html)]
    return problems


def test_h6b_every_page_carries_a_strict_csp(make_user: Any, persona: Any) -> None:
    from chat.practice import services as practice_services
    from chat.rooms import services as rooms

    person = make_user(nickname="Csp", is_staff=True, is_superuser=True)
    conv = practice_services.practice_start(user=person, persona=persona)
    room = rooms.room_create(owner=person, name="Csp room")
    anonymous, signed = Client(), Client()
    signed.force_login(person)
    pages = {
        "landing": (anonymous, "/"),
        "log-in": (anonymous, LOGIN_URL),
        "sign-up": (anonymous, SIGNUP_URL),
        "home": (signed, "/"),
        "practice": (signed, f"/c/{conv.pk}/"),
        "room": (signed, f"/rooms/{room.pk}/"),
        "rooms": (signed, "/rooms/"),
        "profile": (signed, "/profile/"),
        "admin": (signed, "/admin/"),
    }
    with report.case(
        "H6b",
        "GET 9 pages (anonymous, signed in, admin): Content-Security-Policy header, and "
        "anything inline in the HTML that it would block",
    ) as row:
        found: dict[str, list[str]] = {}
        headers: dict[str, dict[str, str]] = {}
        for name, (client, url) in pages.items():
            response = client.get(url)
            assert response.status_code == 200, (name, response.status_code)
            html = response.content.decode()
            policy = directives(response.headers.get("Content-Security-Policy", ""))
            headers[name] = policy
            problems = inline_problems(html)
            # Every inline <style> carries this response's nonce, and only it.
            nonces = set(re.findall(r'<style nonce="([^"]+)"', html))
            styles = len(re.findall(r"<style\b", html))
            if styles and (len(nonces) != 1 or styles != len(re.findall(r"<style nonce=", html))):
                problems.append(f"{styles} <style> with nonces {nonces}")
            if nonces and f"'nonce-{next(iter(nonces))}'" not in policy.get("style-src", ""):
                problems.append("style nonce not in the policy")
            if problems:
                found[name] = problems
        missing = [n for n, p in headers.items() if any(p.get(k) != v for k, v in POLICY.items())]
        sockets = {n: p.get("connect-src") for n, p in headers.items()}
        row.set(
            result=f"header on {len(pages) - len(missing)}/{len(pages)} pages "
            f"(default-src 'self', scripts from 'self' only, styles 'self' + nonce, "
            f"connect-src {sockets['practice']}, frame-ancestors 'none'); inline content it "
            f"would block: {found or 'none'}",
            sent=len(pages),
        )
        assert not missing, {n: headers[n] for n in missing}
        assert not found, found
        assert set(sockets.values()) == {"'self' ws://testserver"}
        assert "Content-Security-Policy-Report-Only" not in signed.get("/").headers


def test_csp_report_only_and_social_providers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    enforced = load_settings(monkeypatch, tmp_path)
    trial = load_settings(
        monkeypatch, tmp_path, CSP_REPORT_ONLY="1", GITHUB_CLIENT_ID="gh", KAKAO_CLIENT_ID="kk"
    )

    development = load_settings(monkeypatch, tmp_path, DEBUG="1")

    assert development["SECURE_CSP"] == {} and development["SECURE_CSP_REPORT_ONLY"]
    assert enforced["SECURE_CSP"]["form-action"] == ["'self'"]
    assert enforced["SECURE_CSP_REPORT_ONLY"] == {}
    assert trial["SECURE_CSP"] == {}
    # Social log-in's redirect to the provider follows a POST: form-action must allow it.
    assert trial["SECURE_CSP_REPORT_ONLY"]["form-action"] == [
        "'self'",
        "https://github.com",
        "https://kauth.kakao.com",
        "https://accounts.kakao.com",
    ]


def test_secure_request_gets_the_wss_origin(make_user: Any) -> None:
    response = Client().get("/health/", secure=True)

    assert "connect-src 'self' wss://testserver" in response.headers["Content-Security-Policy"]


# --------------------------------------------------------------------------- H6c huge ids


def test_h6c_huge_integer_in_a_url_is_404(make_user: Any) -> None:
    from chat.rooms import services as rooms

    owner = make_user(nickname="Owner")
    room = rooms.room_create(owner=owner, name="Ids")
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    ids = ["99999999999999999999999", "9223372036854775808", "1" * 19]
    with report.case(
        "H6c", "the owner POSTs /rooms/<id>/members/<n>/remove/ with 19- and 23-digit n"
    ) as row:
        codes = [client.post(f"/rooms/{room.pk}/members/{n}/remove/").status_code for n in ids]
        largest = client.post(f"/rooms/{room.pk}/members/{'9' * 18}/remove/").status_code
        row.set(
            result=f"{len(ids)} huge ids answered {sorted(set(codes))}; an 18-digit id "
            f"(fits a 64-bit id) still reaches the view: {largest}",
            sent=len(ids) + 1,
            stored=0,
        )
        assert codes == [404] * len(ids)
        assert largest == 302  # no such member: nothing to remove, back to the room


def test_no_url_pattern_uses_the_unbounded_int_converter() -> None:
    from django.urls import URLPattern, URLResolver, get_resolver
    from django.urls.converters import IntConverter

    def walk(patterns: list[Any]) -> list[str]:
        found = []
        for p in patterns:
            converters = getattr(p.pattern, "converters", {})
            found += [str(p.pattern) for c in converters.values() if type(c) is IntConverter]
            if isinstance(p, URLResolver):
                found += walk(p.url_patterns)
            assert isinstance(p, URLPattern | URLResolver)
        return found

    # The admin's own object-id URLs are strings, allauth's are strings too.
    assert walk(get_resolver().url_patterns) == []


# --------------------------------------------------------------------------- H6d sign-up


def sign_up(email: str) -> tuple[int, str, list[str], str, bool]:
    """A sign-up from a fresh browser: status, redirect, cookies set, next page (normalised)."""
    client = Client()
    response = client.post(
        SIGNUP_URL,
        {"email": email, "nickname": "Someone", "password1": PASSWORD, "password2": PASSWORD},
    )
    location = response.headers.get("Location", "")
    page = client.get(location).content.decode() if location else response.content.decode()
    # What differs by nature between two page loads: the address typed, tokens, the nonce.
    page = page.replace(email, "<email>")
    page = re.sub(r'(value|nonce)="[A-Za-z0-9_-]{16,}"', r'\1="<token>"', page)
    page = re.sub(r'"X-CSRFToken": "[A-Za-z0-9]+"', '"X-CSRFToken": "<token>"', page)
    return response.status_code, location, sorted(response.cookies), page, signed_in(client)


def test_h6d_sign_up_does_not_tell_who_has_an_account(make_user: Any) -> None:
    from accounts.models import User

    make_user(email="kim@example.com", nickname="Kim")
    with report.case(
        "H6d", "sign up with kim@example.com (has an account) and with new@example.com"
    ) as row:
        known = sign_up("kim@example.com")
        unknown = sign_up("new@example.com")
        to_owner = [m for m in mail.outbox if m.to == ["kim@example.com"]]
        to_newcomer = [m for m in mail.outbox if m.to == ["new@example.com"]]
        same = known == unknown
        row.set(
            result=f"both {known[0]} to {known[1]}, same cookies and the same page "
            f"({'identical' if same else 'DIFFERENT'} but for the address typed); the owner "
            f"got {len(to_owner)} e-mail ({to_owner[0].subject if to_owner else '-'}), the "
            f"newcomer a code; accounts: {User.objects.count()} (no second Kim)",
            sent=2,
            stored=User.objects.count() - 1,
        )
        assert known[0] == 302 and known[1] == "/accounts/confirm-email/"
        assert same, "\n".join(
            line for line in known[3].splitlines() if line not in unknown[3].splitlines()
        )
        assert "already registered" not in known[3]
        assert not known[4] and not unknown[4]
        assert len(to_owner) == 1 and "already exists" in to_owner[0].body
        assert len(to_newcomer) == 1
        assert User.objects.filter(email="kim@example.com").count() == 1


# --------------------------------------------------------------------------- H6e/f proxy


_attempts = iter(range(10**6))


def failed_logins(headers: dict[str, str], count: int, address: str = "10.0.0.1") -> list[bool]:
    """`count` failed logins (each for another account) from one peer; True where refused."""
    client = Client(REMOTE_ADDR=address)
    out = []
    for _ in range(count):
        email = f"nobody{next(_attempts)}@example.com"
        response = log_in(client, email, "wrong-password", **headers)
        assert response.status_code in (200, 429)
        out.append(refused_as_too_many(response))
    return out


def test_h6e_forwarded_for_is_ignored_when_no_proxy_is_trusted(settings: Any) -> None:
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = None
    with report.case(
        "H6e",
        "TRUSTED_PROXY_COUNT unset: 11 failed logins from one address, each with another "
        "X-Forwarded-For/X-Real-IP",
    ) as row:
        limited = [
            failed_logins(
                {"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"192.0.2.{i}"},
                1,
                address="203.0.113.7",
            )[0]
            for i in range(11)
        ]
        row.set(
            result=f"attempt 11 {'refused' if limited[10] else 'let through'}: the forged "
            "headers did not change the address counted (off by default, no bypass)",
            sent=11,
        )
        assert limited == [False] * 10 + [True]


def load_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    """The settings module's namespace, loaded afresh with `env` added to the environment."""
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name in (
        "REDIS_URL",
        "TRUSTED_PROXY_COUNT",
        "TRUSTED_CLIENT_IP_HEADER",
        "CSP_REPORT_ONLY",
        "DEBUG",
        "GITHUB_CLIENT_ID",
        "KAKAO_CLIENT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "project" / "settings.py"))


def test_h6f_clients_behind_the_proxy_do_not_lock_each_other_out(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loaded = load_settings(monkeypatch, tmp_path, TRUSTED_PROXY_COUNT="1")
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = loaded["ALLAUTH_TRUSTED_PROXY_COUNT"]
    with report.case(
        "H6f",
        "TRUSTED_PROXY_COUNT=1 (every request from the balancer 10.0.0.1): client A fails 11 "
        "logins, then client B logs in; A forges an extra X-Forwarded-For",
    ) as row:
        a = failed_logins({"X-Forwarded-For": "198.51.100.1"}, 11)
        forged = failed_logins({"X-Forwarded-For": "192.0.2.77, 198.51.100.1"}, 1)
        b_failed = failed_logins({"X-Forwarded-For": "198.51.100.2"}, 1)
        row.set(
            result=f"A limited at attempt {a.index(True) + 1 if True in a else 'never'}, still "
            f"limited with a forged hop in front: {forged[0]}; B (same peer address) "
            f"{'locked out' if b_failed[0] else 'not locked out'}",
            sent=13,
        )
        assert a == [False] * 10 + [True]
        assert forged == [True]  # only the hop the balancer added counts
        assert b_failed == [False]


def test_trusted_client_ip_header_is_used_when_set(settings: Any) -> None:
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = "X-Real-IP"

    a = failed_logins({"X-Real-IP": "198.51.100.1"}, 11)
    b = failed_logins({"X-Real-IP": "198.51.100.2"}, 1)

    assert a[-1] and not b[0]


def test_request_that_skipped_the_proxy_is_counted_by_its_peer(settings: Any) -> None:
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2  # X-Forwarded-For shorter than that: not a 500

    assert failed_logins({"X-Forwarded-For": "198.51.100.1"}, 1) == [False]


def test_proxy_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    off = load_settings(monkeypatch, tmp_path)
    on = load_settings(
        monkeypatch, tmp_path, TRUSTED_PROXY_COUNT="1", TRUSTED_CLIENT_IP_HEADER="X-Real-IP"
    )

    assert (off["ALLAUTH_TRUSTED_PROXY_COUNT"], off["ALLAUTH_TRUSTED_CLIENT_IP_HEADER"]) == (
        0,
        None,
    )
    assert (on["ALLAUTH_TRUSTED_PROXY_COUNT"], on["ALLAUTH_TRUSTED_CLIENT_IP_HEADER"]) == (
        1,
        "X-Real-IP",
    )


# --------------------------------------------------------------------------- H6g Redis down


@pytest.fixture
def dead_redis_cache(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """The cache exactly as the settings build it for REDIS_URL, with Redis not there."""
    loaded = load_settings(monkeypatch, tmp_path, REDIS_URL=DEAD_REDIS)
    settings.CACHES = loaded["CACHES"]
    settings.REDIS_URL = DEAD_REDIS
    yield


@pytest.mark.usefixtures("dead_redis_cache")
def test_h6g_login_and_signup_while_redis_is_down(make_user: Any) -> None:
    make_user(email="kim@example.com")
    with report.case(
        "H6g",
        f"REDIS_URL={DEAD_REDIS} (nothing listening): log in (wrong, then right password), "
        "sign up, /health/detailed/",
    ) as row:
        client = Client(raise_request_exception=False)
        wrong = log_in(client, "kim@example.com", "wrong-password")
        right = log_in(client, "kim@example.com", PASSWORD)
        logged_in = signed_in(client)
        newcomer = Client(raise_request_exception=False)
        signup = newcomer.post(
            SIGNUP_URL,
            {
                "email": "new@example.com",
                "nickname": "New",
                "password1": PASSWORD,
                "password2": PASSWORD,
            },
        )
        health = Client().get("/health/detailed/")
        services = health.json()["services"]
        row.set(
            result=f"log-in {wrong.status_code} (wrong), {right.status_code} (right, signed in: "
            f"{logged_in}); sign-up {signup.status_code}; health {health.status_code} with "
            f"cache {services['cache']['status']} ({services['cache'].get('fallback')}), "
            f"redis {services['redis']['status']}",
            sent=3,
        )
        assert wrong.status_code == 200
        assert right.status_code == 302 and logged_in
        assert signup.status_code == 302
        assert health.status_code == 503
        assert services["cache"] == {
            "status": "degraded",
            "backend": "redis",
            "fallback": "local memory",
            "ms": services["cache"]["ms"],
        }
        assert services["redis"]["status"] == "down"


@pytest.mark.usefixtures("dead_redis_cache")
def test_failed_logins_are_still_limited_while_redis_is_down() -> None:
    limited = failed_logins({}, 11, address="203.0.113.9")

    assert limited == [False] * 10 + [True]


def test_health_reports_the_local_cache_ok(settings: Any) -> None:
    settings.REDIS_URL = ""
    services = Client().get("/health/detailed/").json()["services"]

    assert services["cache"]["status"] == "ok"
    assert services["cache"]["backend"] == "LocMemCache"


def test_cache_logs_the_outage_once(
    dead_redis_cache: None, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(5):
        cache.set(f"k{i}", i)

    assert cache.get("k4") == 4
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "unreachable" in r.message)
    ) == 1
