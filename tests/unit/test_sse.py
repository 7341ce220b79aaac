"""chat.coach.sse.SSEDecoder: events come out whole however the network cuts the body."""

from __future__ import annotations

import json

import pytest

from chat.coach.sse import Event, SSEDecoder


def chunk(text: str) -> bytes:
    payload = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


BODY = (
    chunk("안녕하세요")
    + chunk(" 면접을")
    + b": keep-alive\n\n"
    + chunk(" 시작합니다 🎤")
    + b"data: [DONE]\n\n"
)


def decode_in_pieces(body: bytes, cuts: list[int]) -> list[Event]:
    decoder = SSEDecoder()
    events: list[Event] = []
    start = 0
    for cut in [*cuts, len(body)]:
        events += decoder.feed(body[start:cut])
        start = cut
    assert not decoder.pending
    return events


def texts(events: list[Event]) -> list[str]:
    return [
        json.loads(e.data)["choices"][0]["delta"]["content"] for e in events if e.data != b"[DONE]"
    ]


def test_whole_body_gives_every_event_and_done():
    events = decode_in_pieces(BODY, [])
    assert texts(events) == ["안녕하세요", " 면접을", " 시작합니다 🎤"]
    assert events[-1] == Event("", b"[DONE]")


def test_a_cut_at_every_byte_gives_the_same_events():
    # Every cut point: inside "data:", inside a line, between \n\n, inside a UTF-8 sequence.
    whole = decode_in_pieces(BODY, [])
    for cut in range(1, len(BODY)):
        assert decode_in_pieces(BODY, [cut]) == whole, cut


def test_one_byte_at_a_time_keeps_korean_and_emoji_whole():
    events = decode_in_pieces(BODY, list(range(1, len(BODY))))
    assert "".join(texts(events)) == "안녕하세요 면접을 시작합니다 🎤"


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_endings(newline: bytes):
    body = BODY.replace(b"\n", newline)
    whole = decode_in_pieces(body, [])
    assert texts(whole) == ["안녕하세요", " 면접을", " 시작합니다 🎤"]
    for cut in range(1, len(body)):  # a CR LF cut in two must not end the event early
        assert decode_in_pieces(body, [cut]) == whole, cut


def test_event_name_and_multiline_data():
    decoder = SSEDecoder()
    events = decoder.feed(b'event: error\ndata: {"error":\ndata: {"message": "boom"}}\n\n')
    assert events == [Event("error", b'{"error":\n{"message": "boom"}}')]
    assert json.loads(events[0].data)["error"]["message"] == "boom"
    # The name belongs to one event only.
    assert decoder.feed(b"data: x\n\n") == [Event("", b"x")]


def test_an_unfinished_event_is_pending_and_not_returned():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"choices": []}\n') == []
    assert decoder.pending
    assert decoder.feed(b"\n") == [Event("", b'{"choices": []}')]
    assert not decoder.pending
