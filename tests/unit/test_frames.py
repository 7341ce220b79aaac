"""Hand-built fragments on the hot path stay equal to their reference templates."""

from __future__ import annotations

import uuid

from django.template.loader import render_to_string

from chat import frames


def render(name: str, **context: object) -> str:
    return render_to_string(f"chat/ws/{name}.html", context).strip()


def test_token_frames_match_their_partial_and_escape_the_text():
    message_id = uuid.uuid4()
    text = ' <b>bold</b> & "quoted" '
    assert frames.tokens(message_id, text) == render("tokens", message_id=message_id, text=text)
    assert "<b>" not in frames.tokens(message_id, text)


def test_the_online_list_matches_its_partial():
    members = [(1, "Kim"), (2, "<script>Lee</script>"), (3, "O'Neil & co")]
    assert frames.presence(members) == render("presence", members=members, oob=True)
    assert "<script>" not in frames.presence(members)


def test_appended_messages_match_their_partial():
    parts = ['<article id="a"></article>', '<article id="b"></article>']
    expected = render("append", html="".join(parts)).replace("&lt;", "<").replace("&gt;", ">")
    expected = expected.replace("&quot;", '"')
    assert frames.append_messages(parts) == expected


def test_socket_fragments_are_out_of_band_elements():
    for html in (
        frames.notice("Hello"),
        frames.typing(1, "Kim"),
        frames.message_deleted(uuid.uuid4()),
    ):
        assert html.startswith("<") and "hx-swap-oob" in html
