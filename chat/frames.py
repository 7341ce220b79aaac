"""HTML fragments pushed over the websocket (htmx ws extension, out-of-band swaps).

Every frame is one or more top-level elements carrying `hx-swap-oob`: the ws extension
ignores bare text. The markup lives in templates (`templates/chat/partials/` for what
pages and sockets share, `templates/chat/ws/` for socket-only fragments); each frame is
rendered once and sent to the whole group, so nothing here depends on who receives it.
Two fragments are built by hand because they are on the hot path (token frames, the
online list of a large room); tests keep each equal to its reference template.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterable
from html import escape as escape_html
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from chat import cards
from chat.models import Conversation, Feedback, Message
from chat.rendering import RENDERER_VERSION, open_block_start, render_markdown, render_plain

MESSAGE_TEMPLATE = "chat/partials/message.html"
FEEDBACK_TEMPLATE = "chat/partials/feedback.html"


def _render(template: str, context: dict[str, object]) -> str:
    return render_to_string(template, context).strip()


def coach_name(message: Message) -> str:
    """The coach's name in the message's conversation ("" for the default)."""
    persona = message.conversation.persona if message.conversation_id else None
    return persona.display_name if persona else ""


def feedback_of(message: Message) -> Feedback | None:
    """A learner answer's feedback in a practice conversation (None elsewhere)."""
    if message.role != Message.Role.USER or message.kind != Message.Kind.TEXT:
        return None
    if message.conversation_id and message.conversation.kind != Conversation.Kind.PRACTICE:
        return None  # rooms get no feedback: spare them the query
    try:
        return message.feedback
    except Feedback.DoesNotExist:
        return None


def message_body(message: Message, feedback: Feedback | None = None) -> SafeString:
    """The inside of a message: sanitised Markdown when finished, escaped text otherwise.

    A finished coach message uses the HTML stored when it ended, if the current renderer
    made it; otherwise it is rendered here (never written back: a page only reads).
    """
    if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING:
        if message.html_version == RENDERER_VERSION and message.html:
            return mark_safe(message.html)  # noqa: S308 - sanitised by render_markdown
        return render_markdown(message.content)
    if feedback is not None:
        return cards.highlighted(message.content, (feedback.analysis or {}).get("highlights"))
    return render_plain(message.content)


def message_context(
    message: Message, *, oob: bool = False, closed: int | None = None
) -> dict[str, object]:
    """What the message partial needs for one message, computed once in Python.

    The page's list and the socket render the same partial from this dict, so both make
    the same markup. A growing reply shows its closed blocks rendered (they stay as they
    are) and its open last block as escaped text; `closed` is where the stream split them
    (else found here). The time and the read-aloud link are computed here, not by template
    filters and `{% url %}`: they are most of a message's cost on a long page.
    """
    growing = message.role == Message.Role.ASSISTANT and message.status == Message.Status.STREAMING
    plain = message.role != Message.Role.ASSISTANT or growing
    feedback = feedback_of(message)
    body = message_body(message, feedback)
    blocks = mark_safe("")
    if growing:
        text = message.content
        split = open_block_start(text) if closed is None else min(closed, len(text))
        blocks, body = render_markdown(text[:split]), render_plain(text[split:])
    created = message.created_at
    local = timezone.localtime(created) if created is not None else None
    speaks = (
        message.role == Message.Role.ASSISTANT
        and message.status == Message.Status.COMPLETE
        and message.kind == Message.Kind.TEXT
    )
    return {
        "m": message,
        "body": body,
        "blocks": blocks,
        "growing": growing,
        "plain": plain,
        "coach_name": coach_name(message) if message.role == Message.Role.ASSISTANT else "",
        "oob": oob,
        "card": cards.card_for(feedback, message.content) if feedback else None,
        "versions": _versions(message) if feedback else [],
        # The same strings as `|date:"c"` and `|time:"H:i"` in the reader's zone.
        "created_iso": local.isoformat() if local else "",
        "created_hm": f"{local:%H:%M}" if local else "",
        "speech_url": reverse("message-speech", args=[message.pk]) if speaks else "",
    }


def render_message(message: Message, *, oob: bool = False, closed: int | None = None) -> str:
    """One message as HTML (the page's list renders the same partial: `message_item`)."""
    return render_to_string(MESSAGE_TEMPLATE, message_context(message, oob=oob, closed=closed))


class RenderedItems:
    """Message list items already rendered in this process, by everything that shapes them.

    A page of 50 messages spent half its time rendering the same partial again for every
    view. The key is a digest of the partial's whole input (the message's and its
    feedback's stored fields, the names, the language and the time zone), so an
    entry can never be stale: a change of any of them is a different key, and old entries
    fall out (oldest first) past `size`. Answers with their feedback card and versions
    are kept too (most of a practice page); a reply still growing is not.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: dict[bytes, SafeString] = {}
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(message: Message) -> bytes | None:
        """The digest of what the partial would be rendered from; None when not kept.

        Taken from the message's own stored fields (every column, so a new one can never
        be missed), its feedback's (every column: the card), its versions' ids, the
        author's and the coach's names, the renderer version, the language, the reader's
        time zone and the script prefix (in the read-aloud link), not from
        `message_context`'s output: on a hit nothing is computed or escaped.
        """
        if message.role == Message.Role.ASSISTANT and message.status == Message.Status.STREAMING:
            return None  # a growing reply changes with every token: not worth keeping
        found = feedback_of(message)
        versions: list[Any] = []
        if found is not None and (message.parent_id or message.metadata.get("has_versions")):
            if getattr(message, "version_ids", None) is None:  # read once, for the render too
                message.version_ids = version_ids(message)  # type: ignore[attr-defined]
            versions = message.version_ids  # type: ignore[attr-defined]
        writer = message.author if message.author_id and message.role == Message.Role.USER else None
        parts = (
            get_language() or "",
            timezone.get_current_timezone_name(),
            get_script_prefix(),
            RENDERER_VERSION,
            writer.display_name if writer is not None else "",
            coach_name(message) if message.role == Message.Role.ASSISTANT else "",
            [getattr(message, name) for name in _MESSAGE_COLUMNS],
            [getattr(found, name) for name in _FEEDBACK_COLUMNS] if found is not None else None,
            versions,
        )
        payload = orjson.dumps(parts, default=str, option=orjson.OPT_NON_STR_KEYS)
        return hashlib.blake2b(payload, digest_size=20).digest()

    def html(self, message: Message) -> SafeString:
        """The message's list item, rendered once per distinct input."""
        key = self.key(message) if self.size else None
        if key is not None:
            found = self.items.get(key)
            if found is not None:
                self.hits += 1
                return found
        html = mark_safe(render_to_string(MESSAGE_TEMPLATE, message_context(message)))  # noqa: S308
        if key is not None:
            with self.lock:
                self.misses += 1
                self.items[key] = html
                while len(self.items) > self.size:
                    del self.items[next(iter(self.items))]
        return html


_MESSAGE_COLUMNS = tuple(field.attname for field in Message._meta.concrete_fields)
_FEEDBACK_COLUMNS = tuple(field.attname for field in Feedback._meta.concrete_fields)
rendered_items = RenderedItems(settings.MESSAGE_ITEM_CACHE_SIZE)


def _versions(message: Message) -> list[tuple[int, str, bool]]:
    """(number, message id, is this one) of an answer's versions; [] when it has one."""
    if not (message.parent_id or message.metadata.get("has_versions")):
        return []
    # Read in the sync hop that wrote the version (frames of a reply render in async code).
    ids = getattr(message, "version_ids", None)
    if ids is None:
        ids = version_ids(message)
    return [(i, str(pk), pk == message.pk) for i, pk in enumerate(ids, 1)]


def version_ids(message: Message) -> list[Any]:
    """The ids of an answer's versions, oldest first (the first answer, then each again)."""
    root = message.parent_id or message.pk
    return list(
        Message.objects.filter(conversation_id=message.conversation_id)
        .filter(Q(pk=root) | Q(parent_id=root))
        .order_by("seq")
        .values_list("pk", flat=True)
    )


def feedback_card(feedback: Feedback, answer: str) -> str:
    """An answer's feedback card, replaced whole (the model's part arrived, or failed)."""
    return _render(FEEDBACK_TEMPLATE, {"card": cards.card_for(feedback, answer), "card_oob": True})


def append_messages(html: Iterable[str]) -> str:
    """Append rendered messages to the list (reference: chat/ws/append.html)."""
    return '<div hx-swap-oob="beforeend:#messages">' + "".join(html) + "</div>"


def message_appended(message: Message) -> str:
    """A new message, appended to `#messages`."""
    return append_messages([render_message(message)])


def message_replaced(message: Message, *, closed: int | None = None) -> str:
    """A message replaced whole (finished reply, or a fresh snapshot of a growing one)."""
    return render_message(message, oob=True, closed=closed)


def tokens(message_id: object, text: str) -> str:
    """Streamed text appended to a reply's body; escaped, never raw HTML.

    Built by hand with the standard library's escape (Django's `escape` is the same call
    behind lazy-string checks): this runs for every batch of every reply (reference:
    chat/ws/tokens.html).
    """
    return (
        f'<span hx-swap-oob="beforeend:#message-{escape_html(str(message_id))}-body">'
        f"{escape_html(text)}</span>"
    )


def blocks_closed(message_id: object, closed: str, tail: str) -> str:
    """Blocks of a growing reply that closed, rendered once; the open tail as text again.

    Sent instead of a token frame when new text closed a block (reference:
    chat/ws/blocks.html): what the reader sees while it streams is what stays.
    """
    return format_html(
        '<div hx-swap-oob="beforeend:#message-{}-blocks">{}</div>'
        '<div id="message-{}-body" class="body plain" hx-swap-oob="true" hx-disable>{}</div>',
        str(message_id),
        render_markdown(closed),
        str(message_id),
        tail,
    )


def conversation_title(title: str) -> str:
    """The conversation's heading after it was named (the page's tab title follows: app.js)."""
    return _render("chat/ws/title.html", {"title": title})


def message_deleted(message_id: object) -> str:
    """Remove a message from the page (a regenerated reply)."""
    return _render("chat/ws/deleted.html", {"message_id": str(message_id)})


def quota(remaining: int, limit: int, resets: dt.datetime) -> str:
    """The remaining AI replies today, and when they reset."""
    return _render(
        "chat/partials/quota.html",
        {"remaining": remaining, "limit": limit, "reset_at": resets, "oob": True},
    )


def notice(
    text: str, *, level: str = "info", reset_at: dt.datetime | None = None, cause: str = ""
) -> str:
    """A short notice for one socket (not stored), shown above the composer.

    `cause` names what the notice is about, so the page clears it when that ends;
    `reset_at` adds the quota's reset moment, shown in the reader's zone.
    """
    context: dict[str, object] = {
        "text": text,
        "level": level,
        "reset_at": reset_at,
        "cause": cause,
    }
    return _render("chat/ws/notice.html", context)


def composer(conversation: Conversation) -> str:
    """An empty composer box and no notice, after a send was accepted."""
    context = {"conversation": conversation, "message_max_length": settings.MAX_MESSAGE_LENGTH}
    return _render("chat/ws/composer.html", context)


def typing(user_id: int, nickname: str) -> str:
    """Who is typing now (the typer's own page hides it with CSS on data-user)."""
    return _render("chat/ws/typing.html", {"user_id": user_id, "name": nickname})


def presence(members: list[tuple[int, str]]) -> str:
    """The members online now (reference: chat/ws/presence.html).

    Built by hand: the stdlib escape Django's wraps, in one join, is 0.4 ms rather than
    5.5 ms for 1,000 members, paid by every page that opens and every announcement.
    """
    items = "".join(f'<li data-user="{int(uid)}">{escape_html(name)}</li>' for uid, name in members)
    return format_html(
        '<ul id="presence" hx-swap-oob="true" class="presence" data-testid="presence" '
        'aria-label="{}">{}</ul>',
        _("Online now"),
        mark_safe(items),  # every name is escaped above
    )
