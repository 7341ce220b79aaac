"""Practice pages through the Django test client: choose a coach, the page, history tools."""

from __future__ import annotations

import json
import re
import uuid
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import conversations
from chat.coach import replies
from chat.models import Conversation, Message, Persona
from chat.practice import services as practice_services
from chat.practice import views
from tests.fakes.fake_openai import HOSTILE_MARKDOWN

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast(settings):
    settings.AI_DAILY_LIMIT = 5
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


@pytest.fixture
def signed_in(client, learner):
    client.force_login(learner)
    return client


@pytest.fixture
def conversation(learner, persona):
    return practice_services.practice_start(user=learner, persona=persona)


@pytest.fixture
def stranger(client, make_user):
    client.force_login(make_user(nickname="Stranger"))
    return client


def add(conversation, n: int) -> None:
    """n more messages, alternating learner and coach."""
    for i in range(n):
        learner_turn = i % 2 == 0
        conversations.message_create(
            conversation=conversation,
            author=conversation.owner if learner_turn else None,
            role=Message.Role.USER if learner_turn else Message.Role.ASSISTANT,
            content=f"message number {i}",
        )


def page_of(conversation) -> str:
    return reverse("conversation", args=[conversation.pk])


class Elements(HTMLParser):
    """Every element of a page as the browser parses it: (tag, attributes)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def with_attr(self, name: str) -> list[tuple[str, str | None]]:
        return [(tag, attrs[name]) for tag, attrs in self.found if name in attrs]


# --- choosing a coach -------------------------------------------------------------------------


def test_new_conversation_needs_signing_in(client):
    response = client.get(reverse("new-conversation"))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_new_conversation_lists_every_active_coach(signed_in, persona):
    Persona.objects.filter(slug="interview-software-engineer").update(is_active=False)

    response = signed_in.get(reverse("new-conversation"))

    html = response.content.decode()
    active = Persona.objects.filter(is_active=True)
    assert html.count('data-testid="persona-option"') == active.count() > 1
    assert f'data-persona="{persona.slug}"' in html
    assert 'data-persona="interview-software-engineer"' not in html


def test_starting_creates_a_conversation_that_opens_with_the_coachs_line(
    signed_in, learner, persona
):
    response = signed_in.post(reverse("new-conversation"), {"persona": persona.pk})

    conversation = Conversation.objects.get(owner=learner)
    assert response.status_code == 302
    assert response["Location"] == f"/c/{conversation.pk}/"
    first = conversation.messages.get()
    assert (first.role, first.content) == ("assistant", persona.opening_line)


def test_an_inactive_or_unknown_coach_cannot_be_started(signed_in, persona):
    persona.is_active = False
    persona.save()

    assert signed_in.post(reverse("new-conversation"), {"persona": persona.pk}).status_code == 404
    assert signed_in.post(reverse("new-conversation"), {"persona": 99999}).status_code == 404
    assert not Conversation.objects.exists()


# --- the conversation page --------------------------------------------------------------------


def test_the_page_connects_its_socket_and_has_the_testable_parts(signed_in, conversation):
    response = signed_in.get(page_of(conversation))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'ws-connect="/ws/chat/{conversation.pk}/"' in html
    assert 'hx-ext="ws"' in html
    for testid in ("composer", "send", "stop", "regenerate", "quota", "messages"):
        assert f'data-testid="{testid}"' in html, testid
    messages = re.search(r'<div id="messages"[^>]*>', html)[0]
    assert 'role="log"' in messages and 'aria-live="polite"' in messages
    assert re.search(r'data-testid="quota" id="quota">5</strong>/5', html)
    assert 'name="message"' in html and "ws-send" in html
    assert 'data-role="assistant" data-status="complete"' in html  # the opening line
    assert 'data-testid="offline-mode"' in html  # no model configured


def test_with_a_model_configured_there_is_no_offline_banner(signed_in, conversation, settings):
    settings.OPENAI_API_KEY = "sk-test"

    assert 'data-testid="offline-mode"' not in signed_in.get(page_of(conversation)).content.decode()


def test_the_quota_badge_counts_todays_replies(signed_in, learner, conversation):
    replies.exchange_start(
        user=learner, conversation=conversation, text="Hi", ask_ai=True, require_ai=True
    )

    html = signed_in.get(page_of(conversation)).content.decode()

    assert re.search(r'data-testid="quota" id="quota">4</strong>/5', html)


def test_hostile_markdown_from_the_model_is_shown_as_inert_text(signed_in, conversation):
    conversations.message_create(
        conversation=conversation, author=None, role="assistant", content=HOSTILE_MARKDOWN
    )

    html = signed_in.get(page_of(conversation)).content.decode()

    page = Elements(html)
    assert "<strong>bold</strong>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown, as text
    assert not [tag for tag, _attrs in page.found if tag == "img"]
    assert [value for _tag, value in page.with_attr("id") if value == "messages"] == ["messages"]
    assert not [v for _t, v in page.with_attr("href") if "javascript" in (v or "").lower()]
    assert not [v for _t, v in page.with_attr("hx-swap-oob")]  # the page itself swaps nothing
    assert all("alert" not in (attrs.get("onerror") or "") for _t, attrs in page.found)


def test_a_reply_still_streaming_is_shown_as_escaped_plain_text(signed_in, conversation):
    conversations.message_create(
        conversation=conversation,
        author=None,
        role="assistant",
        status="streaming",
        content="**not yet** <b>markdown</b>",
    )

    html = signed_in.get(page_of(conversation)).content.decode()

    assert 'data-status="streaming"' in html
    assert "**not yet** &lt;b&gt;markdown&lt;/b&gt;" in html


def test_the_page_needs_signing_in(client, conversation):
    response = client.get(page_of(conversation))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("method", "name", "extra"),
    [
        ("get", "conversation", []),
        ("post", "conversation-rename", []),
        ("get", "conversation-delete", []),
        ("post", "conversation-delete", []),
        ("get", "conversation-export", ["md"]),
        ("get", "conversation-export", ["json"]),
        ("get", "older-messages", []),
    ],
)
def test_someone_elses_conversation_is_not_found(stranger, conversation, method, name, extra):
    url = reverse(name, args=[conversation.pk, *extra])
    data = {"title": "Mine now"} if name.endswith("rename") else {}
    if name == "older-messages":
        url += "?before=2"

    response = getattr(stranger, method)(url, data)

    assert response.status_code == 404
    conversation.refresh_from_db()  # still there, still its title
    assert conversation.title != "Mine now"


def test_an_unknown_conversation_is_not_found(signed_in):
    assert signed_in.get(reverse("conversation", args=[uuid.uuid4()])).status_code == 404


# --- rename, delete -----------------------------------------------------------------------------


def test_rename_with_a_form_post_redirects_back(signed_in, conversation):
    response = signed_in.post(
        reverse("conversation-rename", args=[conversation.pk]), {"title": "STAR practice"}
    )

    assert response.status_code == 302
    assert response["Location"] == page_of(conversation)
    conversation.refresh_from_db()
    assert conversation.title == "STAR practice"


def test_rename_with_htmx_returns_just_the_title(signed_in, conversation):
    response = signed_in.post(
        reverse("conversation-rename", args=[conversation.pk]),
        {"title": "Round two"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="title",
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="title"')
    assert "Round two" in html
    assert "<html" not in html and 'id="messages"' not in html


def test_a_rename_racing_with_a_new_reply_keeps_the_message_sequence(
    signed_in, learner, conversation, monkeypatch
):

    class RacingForm(views.RenameForm):
        def is_valid(self) -> bool:
            # A reply is stored while the rename is on its way: the view's copy is stale now.
            conversations.message_create(
                conversation=self.instance, author=None, content="meanwhile"
            )
            return super().is_valid()

    monkeypatch.setattr(views, "RenameForm", RacingForm)

    signed_in.post(reverse("conversation-rename", args=[conversation.pk]), {"title": "Renamed"})

    conversation.refresh_from_db()
    assert (conversation.title, conversation.last_seq) == ("Renamed", 2)
    nxt = conversations.message_create(conversation=conversation, author=learner, content="next")
    assert nxt.seq == 3


def test_rename_to_nothing_keeps_the_title(signed_in, conversation):
    title = conversation.title

    signed_in.post(reverse("conversation-rename", args=[conversation.pk]), {"title": ""})

    conversation.refresh_from_db()
    assert conversation.title == title


def test_rename_needs_post(signed_in, conversation):
    assert signed_in.get(reverse("conversation-rename", args=[conversation.pk])).status_code == 405


def test_delete_asks_first_and_deletes_only_on_post(signed_in, conversation):
    url = reverse("conversation-delete", args=[conversation.pk])

    confirm = signed_in.get(url)
    assert confirm.status_code == 200
    assert 'data-testid="confirm-delete"' in confirm.content.decode()
    assert 'method="post"' in confirm.content.decode()
    assert Conversation.objects.filter(pk=conversation.pk).exists()

    response = signed_in.post(url)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


# --- the list and search ------------------------------------------------------------------------


@pytest.fixture
def two(learner, persona):
    first = practice_services.practice_start(user=learner, persona=persona)
    Conversation.objects.filter(pk=first.pk).update(title="Behavioural round")
    conversations.message_create(conversation=first, author=learner, content="I love kimchi stew")
    second = practice_services.practice_start(user=learner, persona=persona)
    Conversation.objects.filter(pk=second.pk).update(title="Salary talk")
    return first, second


def titles(html: str) -> list[str]:
    return re.findall(r'<strong class="title">(.*?)</strong>', html)


def test_home_lists_only_my_conversations_newest_first(signed_in, two, make_user, persona):
    practice_services.practice_start(user=make_user(), persona=persona)

    html = signed_in.get(reverse("home")).content.decode()

    assert titles(html) == ["Salary talk", "Behavioural round"]
    assert html.count('data-testid="conversation-item"') == 2


@pytest.mark.parametrize(
    ("query", "found"),
    [("salary", ["Salary talk"]), ("KIMCHI", ["Behavioural round"]), ("nothing", [])],
)
def test_search_finds_titles_and_message_text(signed_in, two, query, found):
    html = signed_in.get(reverse("home"), {"q": query}).content.decode()

    assert titles(html) == found
    assert "<html" in html  # a plain GET gets the whole page
    if not found:
        assert "Nothing matches your search." in html


def test_search_as_you_type_returns_only_the_list(signed_in, two):
    response = signed_in.get(
        reverse("home"),
        {"q": "kimchi"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="conversation-list",
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="conversation-list"')
    assert "<html" not in html and 'data-testid="conversation-search"' not in html
    assert titles(html) == ["Behavioural round"]


def test_someone_elses_messages_are_not_searched(signed_in, two, make_user, persona):
    other = make_user()
    theirs = practice_services.practice_start(user=other, persona=persona)
    conversations.message_create(conversation=theirs, author=other, content="kimchi secrets")

    html = signed_in.get(reverse("home"), {"q": "secrets"}).content.decode()

    assert titles(html) == []


# --- export ---------------------------------------------------------------------------------------


def test_export_as_markdown_downloads_the_transcript(signed_in, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(title="STAR practice")
    add(conversation, 2)

    response = signed_in.get(reverse("conversation-export", args=[conversation.pk, "md"]))

    text = response.content.decode()
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="star-practice.md"'
    assert text.startswith("# STAR practice\n")
    assert conversation.persona.opening_line in text
    assert "**Min-ji** · " in text and "message number 0" in text


def test_export_as_json_downloads_every_message(signed_in, conversation):
    add(conversation, 3)

    response = signed_in.get(reverse("conversation-export", args=[conversation.pk, "json"]))

    data = json.loads(response.content)
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].endswith('.json"')
    assert data["id"] == str(conversation.pk)
    assert [m["seq"] for m in data["messages"]] == [1, 2, 3, 4]
    assert data["messages"][1]["author"] == "Min-ji"


def test_export_in_another_format_is_not_found(signed_in, conversation):
    url = reverse("conversation-export", args=[conversation.pk, "exe"])

    assert signed_in.get(url).status_code == 404


# --- long conversations -------------------------------------------------------------------------


def test_the_page_shows_the_newest_fifty_and_offers_older_ones(signed_in, conversation):
    add(conversation, 79)  # 80 messages with the opening line

    html = signed_in.get(page_of(conversation)).content.decode()

    seqs = [int(n) for n in re.findall(r'data-seq="(\d+)"', html)]
    assert seqs == list(range(31, 81))
    assert f"/c/{conversation.pk}/older/?before=31" in html


def test_older_messages_come_in_pages_until_the_first(signed_in, conversation):
    add(conversation, 79)
    url = reverse("older-messages", args=[conversation.pk])

    page = signed_in.get(url, {"before": 31}, HTTP_HX_REQUEST="true").content.decode()

    assert [int(n) for n in re.findall(r'data-seq="(\d+)"', page)] == list(range(1, 31))
    assert 'data-testid="load-older"' not in page  # nothing before the first
    assert "<html" not in page


def test_older_messages_with_a_bad_cursor_are_not_found(signed_in, conversation):
    url = reverse("older-messages", args=[conversation.pk])

    assert signed_in.get(url, {"before": "x"}).status_code == 404


def queries_for(client, url: str, **params: object) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured)


def test_the_page_and_older_pages_cost_the_same_queries_for_10_or_200_messages(
    signed_in, learner, persona, django_assert_num_queries
):
    small = practice_services.practice_start(user=learner, persona=persona)
    add(small, 9)
    large = practice_services.practice_start(user=learner, persona=persona)
    add(large, 199)
    older = "older-messages"

    page_queries = queries_for(signed_in, page_of(small))
    older_queries = queries_for(signed_in, reverse(older, args=[small.pk]), before=11)

    with django_assert_num_queries(page_queries):
        signed_in.get(page_of(large))
    with django_assert_num_queries(older_queries):
        signed_in.get(reverse(older, args=[large.pk]), {"before": 151}, HTTP_HX_REQUEST="true")
    assert page_queries <= 8 and older_queries <= 6


def test_the_page_reads_the_quota_once_for_the_view_and_the_header(signed_in, conversation):
    with CaptureQueriesContext(connection) as captured:
        page = signed_in.get(page_of(conversation))
    assert page.status_code == 200
    reads = [q["sql"] for q in captured.captured_queries if '"chat_aiusage"' in q["sql"]]
    assert len(reads) == 1, reads
    assert 'data-testid="quota"' in page.content.decode()
