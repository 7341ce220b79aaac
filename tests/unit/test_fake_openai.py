"""The fake OpenAI server itself: directives, records, disconnects and the CLI."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fakes.fake_openai import (
    HOSTILE_MARKDOWN,
    FakeOpenAIServer,
    Script,
    parse_directives,
    reply_tokens,
    split_tokens,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(Script(tokens=4)) as fake:
        yield fake


def post(
    base_url: str, body: dict, path: str = "/chat/completions", headers: dict | None = None
) -> tuple[int, bytes]:
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        conn.request(
            "POST",
            url.path + path,
            json.dumps(body),
            {"content-type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def chat(text: str = "hi", stream: bool = True) -> dict:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
        "stream_options": {"include_usage": True},
    }


def events(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_reply_tokens_carry_leading_spaces_after_the_first():
    tokens = reply_tokens(5)
    assert not tokens[0].startswith(" ")
    assert all(token.startswith(" ") for token in tokens[1:])
    assert reply_tokens(5) == tokens


def test_split_tokens_round_trips_text():
    assert "".join(split_tokens(HOSTILE_MARKDOWN)) == HOSTILE_MARKDOWN
    assert "".join(split_tokens("  two words  ")) == "  two words  "


def test_parse_directives_reads_several_groups():
    found = parse_directives("hi [[fake:status=429]] and [[fake:delay=0.5, stall]]")
    assert found == {"status": "429", "delay": "0.5", "stall": ""}


def test_stream_has_chunks_usage_and_done(fake_server: FakeOpenAIServer):
    status, raw = post(fake_server.base_url, chat())
    data = events(raw)
    chunks = [json.loads(item) for item in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert status == 200
    assert data[-1] == "[DONE]"
    assert text == "".join(reply_tokens(4))
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    record = fake_server.completions[-1]
    # The client can read [DONE] a moment before the server thread marks the record complete.
    deadline = time.monotonic() + 5
    while not record.completed and time.monotonic() < deadline:
        time.sleep(0.01)
        record = fake_server.completions[-1]
    assert record.completed and not record.client_disconnected
    assert record.first_token_at is not None and record.first_token_at >= record.arrived_at


def test_non_streaming_request_gets_a_chat_completion(fake_server: FakeOpenAIServer):
    status, raw = post(fake_server.base_url, chat(stream=False))
    body = json.loads(raw)
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "".join(reply_tokens(4))


TITLE = {"X-Practalk-Purpose": "title"}


def test_a_title_request_gets_the_scripted_title_and_is_no_reply(fake_server: FakeOpenAIServer):
    # The reply's own failure scripting does not apply to title requests.
    fake_server.script = Script(tokens=2, status=500, title="Billing migration")
    status, raw = post(fake_server.base_url, chat(stream=False), headers=TITLE)
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"] == "Billing migration"
    (record,) = fake_server.title_requests
    assert record.title and not record.feedback
    assert fake_server.completions == [] and fake_server.last is None


def test_title_status_fails_only_title_requests(fake_server: FakeOpenAIServer):
    status, _ = post(fake_server.base_url, chat("[[fake:title_status=503]]", False), headers=TITLE)
    assert status == 503
    assert post(fake_server.base_url, chat("[[fake:title_status=503]]", False))[0] == 200


def test_fail_times_fails_first_requests_then_answers(fake_server: FakeOpenAIServer):
    fake_server.script = Script(tokens=2, status=503, fail_times=2)
    statuses = [post(fake_server.base_url, chat())[0] for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_error_body_is_openai_shaped(fake_server: FakeOpenAIServer):
    status, raw = post(fake_server.base_url, chat("[[fake:status=401]]"))
    assert status == 401
    assert json.loads(raw)["error"]["code"] == "invalid_api_key"


def test_client_leaving_mid_stream_is_recorded_quickly(fake_server: FakeOpenAIServer):
    fake_server.script = Script(tokens=500, delay=0.05)
    url = urlsplit(fake_server.base_url)
    body = json.dumps(chat()).encode()
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(
            f"POST {url.path}/chat/completions HTTP/1.1\r\nhost: x\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        sock.recv(4096)
        left_at = time.monotonic()
    assert fake_server.wait_until(lambda r: bool(r) and r[-1].client_disconnected, timeout=2)
    record = fake_server.completions[-1]
    assert record.disconnected_at is not None
    assert record.disconnected_at - left_at < 0.5
    assert record.tokens_sent < 500
    assert not record.completed


def test_drop_is_not_counted_as_the_client_leaving(fake_server: FakeOpenAIServer):
    fake_server.script = Script(tokens=10, drop_after=3)
    with pytest.raises(http.client.IncompleteRead):
        post(fake_server.base_url, chat())
    record = fake_server.completions[-1]
    assert record.tokens_sent == 3
    assert not record.completed
    assert not record.client_disconnected


def test_error_after_ends_the_stream_with_an_error_event(fake_server: FakeOpenAIServer):
    fake_server.script = Script(tokens=10, error_after=3)
    status, raw = post(fake_server.base_url, chat())
    data = [json.loads(item) for item in events(raw)]
    assert status == 200
    assert [c["choices"][0]["delta"].get("content") for c in data[1:-1]] == reply_tokens(3)
    assert data[-1]["error"]["type"] == "server_error"
    record = fake_server.completions[-1]
    assert record.tokens_sent == 3
    assert not record.completed
    assert not record.client_disconnected


def test_models_and_control_endpoints(fake_server: FakeOpenAIServer):
    url = urlsplit(fake_server.base_url)
    root = f"http://{url.hostname}:{url.port}"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("GET", url.path + "/models")
    models = json.loads(conn.getresponse().read())
    conn.request("GET", "/_fake/requests")
    records = json.loads(conn.getresponse().read())
    conn.close()
    status, _ = post(root, {"tokens": 2, "delay": 0.01}, path="/_fake/script")
    assert models["data"][0]["id"] == "fake-model"
    assert records[0]["path"] == "/v1/models"
    assert status == 200
    assert fake_server.script == Script(tokens=2, delay=0.01)
    assert post(root, {"bogus": 1}, path="/_fake/script")[0] == 400
    assert post(root, {}, path="/_fake/reset")[0] == 200
    assert fake_server.requests == []


@pytest.mark.asyncio
async def test_runs_inside_the_current_loop():
    async with FakeOpenAIServer(Script(tokens=3)) as fake:
        url = urlsplit(fake.base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        body = json.dumps(chat(stream=False)).encode()
        writer.write(
            f"POST {url.path}/chat/completions HTTP/1.1\r\nhost: x\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200")
    assert fake.completions[-1].body["model"] == "m"


def test_cli_prints_base_url_and_serves():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_openai", "--port", "0", "--tokens", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        status, raw = post(base_url, chat())
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        assert status == 200
        assert events(raw)[-1] == "[DONE]"
    finally:
        process.terminate()
        process.wait(5)
