"""Turn untrusted message text (user input, AI output) into safe HTML fragments.

Everything produced here is swapped into an htmx page, so the output must not carry anything
htmx (or the browser) would act on: no scripts, no event handlers, no ``id`` (an injected
``id="messages"`` would steal swaps), no ``hx-*``/``data-hx-*``/``ws-*`` attributes (an injected
``hx-swap-oob`` or ``hx-get`` + ``hx-trigger="load"`` would hijack the page), no ``style``.

Defence in depth: markdown-it runs with ``html=False`` (raw HTML becomes visible text) and only
accepts absolute http/https/mailto link targets; its output is then re-sanitised by nh3 with a
strict allow-list, so a bug or a future plugin in the Markdown stage cannot smuggle markup.
Templates should still wrap rendered messages in an ``hx-disable`` container as a last line.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import normalize_newlines
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = ["RENDERER_VERSION", "open_block_start", "render_markdown", "render_plain"]

# Raise when the Markdown rendering or its sanitising changes: messages stored with another
# version are rendered again (and `manage.py rerender_messages` stores the new HTML).
RENDERER_VERSION = 1

# Link targets must be absolute and use one of these schemes. Matched against the URL *after*
# markdown-it has decoded entities and percent-encoded whitespace/control characters, so
# ``java&#x09;script:``, `` javascript:`` or ``JaVaScRiPt:`` can never look like an allowed scheme.
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_SAFE_URL_RE = re.compile(r"(?:https?://|mailto:)\S", re.IGNORECASE)

# ``class`` survives only as a fenced-code language marker, e.g. ``language-c++``.
_CODE_CLASS_RE = re.compile(r"language-[a-z0-9+#-]+")

# Headings are demoted so message content never competes with the page's own h1/h2.
_HEADING_SHIFT = 2

_ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "strong",
        "em",
        "del",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "a",
        "hr",
    }
)

# Only these attributes may exist at all; nh3 drops everything else (id, style, on*, hx-*,
# data-*, ws-*, src, target, ...). ``rel`` is not listed because nh3 sets it itself (link_rel).
# ``target`` is deliberately never allowed: ``target="_blank"`` opens links in a new browsing
# context (historically reverse-tabnabbing via window.opener), and a named target such as
# ``target="chat"`` could navigate another window/frame of the app. Links open in the same tab
# unless the reader chooses otherwise (middle-click etc.).
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}}

_LINK_REL = "nofollow noopener noreferrer"


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep an allow-listed attribute value, or drop it (return None) if it is not acceptable."""
    if attribute == "class":
        value = value.strip().lower()
        return value if tag == "code" and _CODE_CLASS_RE.fullmatch(value) else None
    if attribute == "href":
        return value if _SAFE_URL_RE.match(value) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={tag: set(attrs) for tag, attrs in _ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_filter_attribute,
    strip_comments=True,
    link_rel=_LINK_REL,
    url_schemes=set(_URL_SCHEMES),
    # Relative URLs (``/accounts/logout/``, ``//evil.example``, ``#x``) are never legitimate
    # in a chat message and could point at same-origin endpoints; drop them.
    url_relative="deny",
)


def _validate_link(url: str) -> bool:
    """Accept only absolute http(s) and mailto link targets (markdown-it hook)."""
    return _SAFE_URL_RE.match(url) is not None


def _demote_headings(state: StateCore) -> None:
    """Shift heading levels down (h1 -> h3, ..., capped at h6) in the token stream."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + _HEADING_SHIFT, 6)
            token.tag = f"h{level}"


def _render_image(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Render an image as its escaped alt text instead of an ``<img>`` tag."""
    return escape(renderer.renderInlineAsText(tokens[idx].children or [], options, env))


def _build_markdown() -> MarkdownIt:
    """Create the shared CommonMark + tables + strikethrough parser (raw HTML disabled)."""
    linkify = importlib.util.find_spec("linkify_it") is not None
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": linkify, "typographer": False, "breaks": False},
    )
    md.enable(["table", "strikethrough"])
    if linkify:
        md.enable("linkify")
    md.validateLink = _validate_link  # type: ignore[method-assign]
    md.core.ruler.push("demote_headings", _demote_headings)
    md.add_render_rule("image", _render_image)
    return md


_MD = _build_markdown()

# Block structure only (no inline parsing): where blocks start, for streamed replies.
_BLOCKS = MarkdownIt("commonmark", {"html": False}).enable(["table"])
_BLOCKS.core.ruler.enableOnly(["normalize", "block"])


def render_markdown(text: str) -> SafeString:
    """Render untrusted Markdown to sanitised HTML that is safe to insert into the page."""
    if not text:
        return mark_safe("")
    return mark_safe(_CLEANER.clean(_MD.render(text)))


_CLOSED_BY_BLANK_LINE = frozenset({"paragraph_open", "table_open", "blockquote_open", "hr"})


def open_block_start(text: str) -> int:
    """Where the last top-level block of `text` starts: everything before it is closed.

    While a reply streams its last block can still grow (a paragraph, a list, a table, an
    unclosed code fence); the blocks before it cannot change (a newer block has begun), so
    they are rendered once and stay. Only called when new text holds a newline.
    """
    if "\n" not in text:
        return 0
    blocks = [t for t in _BLOCKS.parse(text) if t.level == 0 and t.nesting >= 0 and t.map]
    if not blocks:
        return 0
    last = blocks[-1].type
    # A heading ends with its line; a paragraph, table or quote with a blank line. A list
    # (a blank line may precede its next item) or a code fence waits for the next block.
    if (last == "heading_open" and text.endswith("\n")) or (
        last in _CLOSED_BY_BLANK_LINE and text.endswith("\n\n")
    ):
        return len(text)
    if len(blocks) < 2:
        return 0
    block_map = blocks[-1].map
    if block_map is None:
        return 0
    last_line = block_map[0]
    offset = 0
    for _ in range(last_line):
        offset = text.index("\n", offset) + 1
    return offset


def render_plain(text: str) -> SafeString:
    """Escape plain text and turn its newlines into ``<br>`` tags."""
    if not text:
        return mark_safe("")
    return mark_safe(escape(normalize_newlines(text)).replace("\n", "<br>"))


# Inline tokens whose text a reader sees (markup such as ** or [](…) is not among them).
_WORDS = frozenset({"text", "code_inline"})
_SPACES = frozenset({"softbreak", "hardbreak"})


def plain_words(text: str, enough: int = 200) -> str:
    """What a reader of rendered Markdown sees, as one line of words (for list snippets).

    Parsed by the page's own Markdown parser, so "**Situation**" is "Situation", a link is
    its text and a table its cells. Only whole paragraphs are parsed, until `enough`
    characters are had: a snippet needs the start of a long reply, and an emphasis cannot
    span two paragraphs, so none is cut in half.
    """
    taken: list[str] = []
    length = 0
    for block in normalize_newlines(text).split("\n\n"):
        taken.append(block)
        length += len(block)
        if length >= enough:
            break
    words: list[str] = []
    for token in _MD.parse("\n\n".join(taken)):
        if token.type != "inline":
            continue
        for child in token.children or ():
            if child.type in _WORDS:
                words.append(child.content)
            elif child.type in _SPACES:
                words.append(" ")
        words.append(" ")
    return " ".join("".join(words).split())
