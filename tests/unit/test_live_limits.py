"""The socket's frame budget, frame validation and the origin check, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat.live.limits import Bucket, FrameBudget, Verdict
from chat.live.protocol import parse_frame
from project.origins import normalise, origin_allowed


def scope(origin: str | None, host: str = "127.0.0.1:8000", **extra: Any) -> dict[str, Any]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    return {"type": "websocket", "headers": headers}


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    bucket = Bucket(rate=2.0, burst=3)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.5)  # half a second at 2/s: one more token
    assert not bucket.take(100.5)


def test_the_budget_tells_once_per_window_then_closes_past_the_hard_limit(settings: Any) -> None:
    settings.SOCKET_FRAMES_PER_SECOND = 1.0
    settings.SOCKET_FRAMES_BURST = 2.0
    settings.SOCKET_FRAMES_DROPPED_MAX = 5
    budget = FrameBudget()
    verdicts = [budget.frame(now=50.0) for _ in range(9)]
    assert verdicts[:2] == [Verdict.ADMIT, Verdict.ADMIT]
    assert verdicts[2] == Verdict.DROP_AND_TELL
    assert verdicts[3:7] == [Verdict.DROP] * 4
    assert verdicts[7:] == [Verdict.CLOSE, Verdict.CLOSE]


def test_costly_actions_have_their_own_budget() -> None:
    budget = FrameBudget()
    heartbeats = [budget.action("heartbeat", now=10.0) for _ in range(5)]
    assert heartbeats.count(Verdict.ADMIT) == 3
    assert budget.action("send", now=10.0) is Verdict.ADMIT  # only the frame budget applies
    assert budget.action(None, now=10.0) is Verdict.ADMIT


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"action": "send", "message": "\\ud800"}', "not valid Unicode"),
        ('{"action": "send", "\\udc00": "x"}', "not valid Unicode"),
        ('{"action": "send", "x": ' + "[" * 9 + "]" * 9 + "}", "nested too deeply"),
        ('{"action": "send", "x": ' + "[" * 50_000 + "]" * 50_000 + "}", "too large"),
        ('{"action": "send", "x": ' + "[" * 3000 + "]" * 3000 + "}", "nested too deeply"),
    ],
)
def test_frames_that_cannot_be_used_get_a_notice(text: str, problem: str) -> None:
    payload, notice = parse_frame(text, None)
    assert payload == {} and problem in notice


def test_brackets_inside_text_are_not_nesting() -> None:
    text = json.dumps({"action": "send", "message": '[[[[[[[[[[[[{{{{{{ \\" ]]'})
    payload, notice = parse_frame(text, None)
    assert notice == "" and payload["message"].startswith("[[[[")


def test_origins_compare_scheme_host_and_port() -> None:
    assert normalise("HTTP://Example.com") == ("http", "example.com", 80)
    assert normalise("https://example.com:443") == ("https", "example.com", 443)
    assert normalise("null") is None and normalise("http://x/path") is None
    assert origin_allowed(scope("http://127.0.0.1:8000"))
    assert not origin_allowed(scope("http://127.0.0.1:8822"))
    assert not origin_allowed(scope("https://127.0.0.1:8000"))
    assert not origin_allowed(scope(None))


def test_behind_the_tls_proxy_the_site_is_https(settings: Any) -> None:
    proxied = scope("https://127.0.0.1:8000", **{"x-forwarded-proto": "https"})
    assert origin_allowed(proxied)
    assert not origin_allowed(scope("http://127.0.0.1:8000", **{"x-forwarded-proto": "https"}))
    settings.SECURE_PROXY_SSL_HEADER = None  # no proxy trusted: the header means nothing
    assert not origin_allowed(proxied)


def test_a_host_outside_allowed_hosts_has_no_own_origin(settings: Any) -> None:
    assert not origin_allowed(scope("http://evil.example", host="evil.example"))
    settings.CSRF_TRUSTED_ORIGINS = ["https://practalk.example"]
    assert origin_allowed(scope("https://practalk.example"))
