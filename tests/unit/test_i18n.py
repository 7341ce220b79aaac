"""Korean and English interface: catalogues complete and current, pages without English leaks,
the language remembered per person (profile, switch, cookie, socket)."""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from accounts.middleware import scope_language
from accounts.models import User
from chat import conversations
from chat.models import Message
from chat.practice import services as practice_services
from chat.rooms import services as rooms
from tests.conftest import I18N_IGNORE, PASSWORD

LOCALE = Path(settings.BASE_DIR) / "locale"
# What makemessages reads: the apps, the project and the templates.
SOURCES = ["accounts", "chat", "project", "templates"]


# --- Reading .po files --------------------------------------------------------------------
@dataclass
class Entry:
    msgid: str
    msgid_plural: str = ""
    msgctxt: str = ""
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.msgctxt, self.msgid, self.msgid_plural)


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file, header excluded (a small reader: msgctxt, plurals, flags)."""
    entries: list[Entry] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        flags: set[str] = set()
        current = ""
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                flags |= {f.strip() for f in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                fields[current] += ast.literal_eval(line)
            else:
                current, _, rest = line.partition(" ")
                fields[current] = ast.literal_eval(rest)
        if "msgid" not in fields or fields["msgid"] == "":
            continue
        plural_forms = sorted(k for k in fields if k.startswith("msgstr["))
        entries.append(
            Entry(
                msgid=fields["msgid"],
                msgid_plural=fields.get("msgid_plural", ""),
                msgctxt=fields.get("msgctxt", ""),
                msgstr=[fields[k] for k in plural_forms] or [fields.get("msgstr", "")],
                flags=flags,
            )
        )
    return entries


def catalogue(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / "django.po"


# --- (a) the catalogues are what makemessages makes ---------------------------------------
def test_makemessages_leaves_the_catalogues_unchanged(tmp_path: Path, monkeypatch: Any) -> None:
    """Every string in the code is in the catalogues, and nothing else is.

    makemessages runs over a copy of the sources and catalogues: the committed files are
    never rewritten by a test.
    """
    for name in SOURCES:
        shutil.copytree(
            Path(settings.BASE_DIR) / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo"),
        )
    shutil.copytree(LOCALE, tmp_path / "locale", ignore=shutil.ignore_patterns("*.mo"))
    monkeypatch.chdir(tmp_path)
    with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
        call_command(
            "makemessages",
            locale=["ko", "en"],
            no_location=True,
            no_obsolete=True,
            ignore_patterns=I18N_IGNORE,
            verbosity=0,
        )
    for language in ("ko", "en"):
        committed = [e.key for e in read_po(catalogue(language))]
        made = [e.key for e in read_po(tmp_path / "locale" / language / "LC_MESSAGES/django.po")]
        missing = sorted(set(made) - set(committed))
        stale = sorted(set(committed) - set(made))
        assert not missing, f"{language}: run `make messages` and translate: {missing}"
        assert not stale, f"{language}: run `make messages`, these are gone: {stale}"


# --- (b) Korean is complete ---------------------------------------------------------------
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")


def test_every_korean_entry_is_translated_and_none_is_fuzzy() -> None:
    entries = read_po(catalogue("ko"))
    assert len(entries) > 200
    untranslated = [e.msgid for e in entries if not all(s.strip() for s in e.msgstr)]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    assert not untranslated
    assert not fuzzy
    assert "fuzzy" not in catalogue("ko").read_text(encoding="utf-8").split("msgid", 2)[1]


def test_korean_keeps_every_placeholder() -> None:
    for e in read_po(catalogue("ko")):
        wanted = sorted(set(PLACEHOLDER.findall(e.msgid + e.msgid_plural)))
        for s in e.msgstr:
            assert sorted(set(PLACEHOLDER.findall(s))) == wanted, e.msgid


def test_korean_has_one_plural_form() -> None:
    text = catalogue("ko").read_text(encoding="utf-8")
    assert '"Plural-Forms: nplurals=1; plural=0;\\n"' in text
    assert "msgstr[1]" not in text


# --- (c) Korean pages show no English from the catalogue ----------------------------------
VISIBLE_ATTRIBUTES = {"placeholder", "aria-label", "title", "alt"}


class VisibleText(HTMLParser):
    """Text a person sees or hears: text nodes and labelling attributes.

    Skipped: scripts and styles, and message bodies (what people and the coach wrote is
    content, not interface).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.lang = ""
        self._skip: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = values.get("lang", "")
        void = tag in {"input", "meta", "link", "br", "img", "hr"}
        if self._skip and not void:
            self._skip.append(tag)
            return
        if tag in {"script", "style"} or values.get("id", "").endswith("-body"):
            if not void:
                self._skip.append(tag)
            return
        for name in VISIBLE_ATTRIBUTES & values.keys():
            self.texts.append(values[name])
        if tag == "input" and values.get("type") in {"submit", "button"}:
            self.texts.append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            self._skip.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.texts.append(data)


def visible(html: str) -> tuple[str, list[str]]:
    """The page's <html lang> and its visible texts, whitespace collapsed."""
    parser = VisibleText()
    parser.feed(html)
    return parser.lang, [t for t in (" ".join(x.split()) for x in parser.texts) if t]


def english_matchers() -> list[tuple[str, Callable[[str], bool]]]:
    """One test per English msgid that Korean translates differently (a leak if it shows)."""
    matchers = []
    for e in read_po(catalogue("ko")):
        if all(s == e.msgid for s in e.msgstr):
            continue  # kept in English on purpose (see the translator's comment)
        for msgid in filter(None, (e.msgid, e.msgid_plural)):
            english = " ".join(msgid.split())
            if PLACEHOLDER.search(english):
                parts = PLACEHOLDER.split(english)
                pattern = re.compile(".+?".join(re.escape(p) for p in parts))
                matchers.append((english, lambda t, p=pattern: p.fullmatch(t) is not None))
            elif len(english.split()) >= 4:
                # A long sentence is a leak inside a bigger text too.
                matchers.append((english, lambda t, m=english: m in t))
            else:
                matchers.append((english, lambda t, m=english: t == m))
    return matchers


def content_texts() -> set[str]:
    """What staff wrote in the database (the coaches' names and descriptions): data, not
    interface, even where it happens to equal a msgid ("English small talk")."""
    from chat.models import Persona

    texts = set()
    for name, description in Persona.objects.values_list("name", "description"):
        texts |= {" ".join(name.split()), " ".join(description.split())}
    return texts


def leaks(html: str) -> list[str]:
    """English catalogue text on the page, as "'msgid' in 'text'"."""
    _, texts = visible(html)
    content = content_texts()
    texts = [t for t in texts if t not in content]
    matchers = english_matchers()
    return sorted({f"{english!r} in {t!r}" for t in texts for english, hit in matchers if hit(t)})


@pytest.fixture
def korean_client(compiled_messages: None) -> Client:
    return Client(headers={"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"})


@pytest.fixture
def pages(make_user: Callable[..., Any], persona: Any) -> dict[str, Any]:
    """A learner with a practice conversation (every kind of reply) and a room with a guest."""
    learner = make_user(nickname="김민지")
    other = make_user(nickname="Lee")
    practice = practice_services.practice_start(user=learner, persona=persona)
    conversations.message_create(conversation=practice, author=learner, content="I led a team.")
    for status in (Message.Status.STOPPED, Message.Status.FAILED, Message.Status.STREAMING):
        conversations.message_create(
            conversation=practice,
            author=None,
            role=Message.Role.ASSISTANT,
            content="Tell me more.",
            status=status,
        )
    room = rooms.room_create(owner=learner, name="스몰토크", topic="주말 계획")
    rooms.room_join(user=other, room=room)
    theirs = rooms.room_create(owner=other, name="Visitors", is_public=True)
    return {"learner": learner, "practice": practice, "room": room, "theirs": theirs}


def signed_in_urls(p: dict[str, Any]) -> list[str]:
    return [
        reverse("home"),
        reverse("home") + "?q=nothing-like-this",
        reverse("new-conversation"),
        reverse("conversation", args=[p["practice"].pk]),
        reverse("conversation-delete", args=[p["practice"].pk]),
        reverse("room-list"),
        reverse("room", args=[p["room"].pk]),
        reverse("room", args=[p["theirs"].pk]),
        reverse("room-delete", args=[p["room"].pk]),
        reverse("room-invite", args=[p["theirs"].invite_code]),
        reverse("profile"),
    ]


ANONYMOUS_URLS = ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]


@pytest.mark.django_db
def test_korean_pages_show_no_english_interface_text(
    korean_client: Client, pages: dict[str, Any]
) -> None:
    checked = []
    for url in ANONYMOUS_URLS:
        checked.append((url, korean_client.get(url)))
    korean_client.force_login(pages["learner"])
    for url in signed_in_urls(pages):
        checked.append((url, korean_client.get(url)))
    for url, response in checked:
        assert response.status_code == 200, url
        html = response.content.decode()
        lang, texts = visible(html)
        assert lang == "ko", url
        assert not leaks(html), url
        assert any(re.search("[가-힣]", t) for t in texts), url


@pytest.mark.django_db
def test_the_leak_check_finds_english_on_english_pages(
    compiled_messages: None, pages: dict[str, Any]
) -> None:
    """The check above is not vacuous: the same pages in English are full of catalogue text."""
    client = Client(headers={"accept-language": "en"})
    assert len(leaks(client.get("/").content.decode())) >= 10
    client.force_login(pages["learner"])
    html = client.get(reverse("conversation", args=[pages["practice"].pk])).content.decode()
    assert visible(html)[0] == "en"
    found = leaks(html)
    assert any("'Send'" in leak for leak in found)
    assert any("AI replies left today" in leak for leak in found)


@pytest.mark.django_db
def test_korean_pages_use_the_agreed_terms(korean_client: Client, pages: dict[str, Any]) -> None:
    korean_client.force_login(pages["learner"])
    _, texts = visible(korean_client.get(reverse("room-list")).content.decode())
    assert "대화방" in texts
    assert "연습" in texts
    html = korean_client.get(reverse("conversation", args=[pages["practice"].pk])).content
    _, texts = visible(html.decode())
    assert "AI 답변" in texts
    assert "보내기" in texts


@pytest.mark.django_db
def test_socket_frames_in_korean_show_no_english(compiled_messages: None) -> None:
    """What the socket sends is rendered in the socket's language (see accounts.middleware)."""
    from django.utils import timezone, translation

    from chat import frames
    from chat.models import Conversation

    practice = Conversation(kind=Conversation.Kind.PRACTICE)
    room = Conversation(kind=Conversation.Kind.ROOM)
    with translation.override("ko"):
        sent = [
            frames.quota(3, 5, timezone.now()),
            frames.composer(practice),
            frames.composer(room),
            frames.typing(1, "Kim"),
            frames.presence([(1, "Kim"), (2, "Lee")]),
        ]
    for html in sent:
        assert not leaks(html), html
        assert re.search("[가-힣]", html), html


# --- The language remembered --------------------------------------------------------------
@pytest.mark.django_db
def test_browser_language_is_the_default(compiled_messages: None) -> None:
    assert visible(Client(headers={"accept-language": "ko"}).get("/").content.decode())[0] == "ko"
    assert (
        visible(Client(headers={"accept-language": "en-US"}).get("/").content.decode())[0] == "en"
    )
    assert visible(Client().get("/").content.decode())[0] == settings.LANGUAGE_CODE


@pytest.mark.django_db
def test_switch_remembers_an_anonymous_visitor_by_cookie(compiled_messages: None) -> None:
    client = Client(headers={"accept-language": "ko"})
    html = client.get("/").content.decode()
    assert 'data-testid="language-switch"' in html
    assert 'action="/i18n/setlang/"' in html
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/rooms/"})
    assert response.status_code == 302
    assert response["Location"] == "/rooms/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert visible(client.get("/").content.decode())[0] == "en"


@pytest.mark.django_db
def test_switch_saves_a_signed_in_persons_language(
    compiled_messages: None, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    client.post("/i18n/setlang/", {"language": "ko", "next": "/"})
    user.refresh_from_db()
    assert user.language == "ko"
    # A new browser, in English, after signing in again: Korean, from the profile.
    fresh = Client(headers={"accept-language": "en"})
    fresh.force_login(user)
    assert visible(fresh.get("/").content.decode())[0] == "ko"


@pytest.mark.django_db
def test_logging_in_switches_to_the_saved_language_at_once(
    compiled_messages: None, make_user: Callable[..., Any]
) -> None:
    user = make_user(language="ko")
    client = Client(headers={"accept-language": "en"})
    response = client.post(
        "/accounts/login/", {"login": user.email, "password": PASSWORD}, follow=True
    )
    assert visible(response.content.decode())[0] == "ko"
    flash = re.search(r'<p class="flash-success">(.*?)</p>', response.content.decode())
    assert flash
    assert re.search("[가-힣]", flash.group(1))  # the "signed in" message is Korean too
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ko"


@pytest.mark.django_db
def test_switch_ignores_an_unknown_language(
    compiled_messages: None, make_user: Callable[..., Any]
) -> None:
    user = make_user(language="ko")
    client = Client()
    client.force_login(user)
    client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    user.refresh_from_db()
    assert user.language == "ko"


@pytest.mark.django_db
def test_profile_sets_the_language_and_blank_follows_the_browser(
    compiled_messages: None, make_user: Callable[..., Any]
) -> None:
    user = make_user(nickname="Mina")
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    html = client.get("/profile/").content.decode()
    assert 'name="language"' in html
    assert 'data-testid="profile-language"' in html
    data = {"nickname": "Mina", "organisation": "", "language": "ko"}
    response = client.post("/profile/", data, follow=True)
    user.refresh_from_db()
    assert user.language == "ko"
    assert visible(response.content.decode())[0] == "ko"
    assert "프로필을 저장했어요." in response.content.decode()
    # htmx: the whole page reloads in the new language.
    response = client.post("/profile/", {**data, "language": ""}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == "/profile/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == ""
    user.refresh_from_db()
    assert user.language == ""
    assert visible(client.get("/").content.decode())[0] == "en"


@pytest.mark.django_db
def test_saved_language_beats_cookie_and_browser(
    compiled_messages: None, make_user: Callable[..., Any]
) -> None:
    user = make_user(language="en")
    client = Client(headers={"accept-language": "ko"})
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    client.force_login(user)
    assert visible(client.get("/").content.decode())[0] == "en"


@pytest.mark.django_db
def test_socket_language_follows_profile_cookie_then_browser(
    make_user: Callable[..., Any],
) -> None:
    headers = [(b"accept-language", b"ko-KR,ko;q=0.9")]
    assert scope_language({"headers": headers}) == "ko"
    assert scope_language({"headers": headers, "cookies": {"django_language": "en"}}) == "en"
    user: User = make_user(language="en")
    assert scope_language({"headers": headers, "user": user}) == "en"
    assert scope_language({"headers": [], "cookies": {}}) == settings.LANGUAGE_CODE
