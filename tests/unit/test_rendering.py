"""Unit tests for chat.rendering: hostile Markdown must never yield active HTML."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from django.utils.safestring import SafeString

from chat.rendering import plain_words, render_markdown, render_plain

ALLOWED_TAGS = {
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
    "h1",
    "h2",
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
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "rel"}, "code": {"class"}}
ALLOWED_SCHEMES = ("http://", "https://", "mailto:")
EXPECTED_REL = "nofollow noopener noreferrer"


@dataclass
class Element:
    """One start tag seen by the parser."""

    tag: str
    attrs: dict[str, str | None]


class Collector(HTMLParser):
    """Collect every start tag, its attributes and the visible text of an HTML fragment."""

    def __init__(self) -> None:
        """Start with no elements and no text."""
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record a start tag."""
        self.elements.append(Element(tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record a self-closing tag."""
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        """Record text content."""
        self.text.append(data)

    def tags(self) -> list[str]:
        """Return the tag names in document order."""
        return [element.tag for element in self.elements]

    def find(self, tag: str) -> list[Element]:
        """Return all elements with the given tag name."""
        return [element for element in self.elements if element.tag == tag]

    def visible_text(self) -> str:
        """Return the concatenated text content."""
        return "".join(self.text)


def parse(html: str) -> Collector:
    """Parse an HTML fragment into a Collector."""
    collector = Collector()
    collector.feed(html)
    collector.close()
    return collector


def assert_only_safe_markup(html: str) -> Collector:
    """Assert every tag/attribute/URL in html is allow-listed, and return the parse."""
    doc = parse(html)
    for element in doc.elements:
        assert element.tag in ALLOWED_TAGS, f"disallowed tag {element.tag!r} in {html!r}"
        allowed = ALLOWED_ATTRIBUTES.get(element.tag, set())
        for name, value in element.attrs.items():
            assert name in allowed, f"disallowed attribute {name!r} on {element.tag!r}"
            assert not name.startswith(("on", "hx-", "data-", "ws-")), name
            if name == "href":
                assert value is not None
                assert value.lower().startswith(ALLOWED_SCHEMES), f"unsafe href {value!r}"
            if name == "class":
                assert value is not None
                assert value.startswith("language-"), f"unexpected class {value!r}"
            if name == "rel":
                assert value == EXPECTED_REL
        if element.tag == "a":
            assert element.attrs.get("rel") == EXPECTED_REL
            assert "target" not in element.attrs
    return doc


@pytest.mark.parametrize(
    "html",
    [
        "<img src=x onerror=alert(1)>",
        '<p id="messages">x</p>',
        '<p hx-swap-oob="true">x</p>',
        '<a href="javascript:alert(1)" rel="nofollow noopener noreferrer">x</a>',
        '<a href="https://e.example" rel="nofollow noopener noreferrer" target="_blank">x</a>',
        '<a href="https://e.example">x</a>',
        '<code class="evil">x</code>',
    ],
)
def test_safety_checker_itself_rejects_unsafe_markup(html: str) -> None:
    with pytest.raises(AssertionError):
        assert_only_safe_markup(html)


HOSTILE_INPUTS = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    '<div hx-get="/accounts/logout/" hx-trigger="load">x</div>',
    '<div id="messages" hx-swap-oob="true">pwned</div>',
    '<a href="https://ok.example" target="_blank" onclick="alert(1)">x</a>',
    '<p style="position:fixed" data-hx-post="/x" ws-send>x</p>',
    "<svg/onload=alert(1)>",
    "<iframe src=https://evil.example></iframe>",
    "<!-- comment --><style>body{display:none}</style>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](%6Aavascript:alert(1))",
    "[x](/accounts/logout/)",
    "[x](//evil.example/)",
    '[x](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    "![x](http://evil/x.png)",
    '![x" onerror="alert(1)](http://evil/x.png)',
    "![x](data:image/png;base64,AAAA)",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html;base64,PHNjcmlwdD4=>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x][r]\n\n[r]: data:text/html,<script>alert(1)</script>",
    "# Title {#messages hx-get=/accounts/logout/}",
    '```x" onmouseover="alert(1)\ncode\n```',
    "```hx-get=/x id=messages\ncode\n```",
    "`<script>alert(1)</script>`",
    "    <script>alert(1)</script>",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "> <div hx-swap-oob='true' id='messages'>",
    "- [x](javascript:alert(1))\n- <b onmouseover=alert(1)>b</b>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "\x00<scr\x00ipt>alert(1)</script>",
]


@pytest.mark.parametrize("source", HOSTILE_INPUTS)
def test_hostile_markdown_yields_only_allow_listed_markup(source: str) -> None:
    assert_only_safe_markup(render_markdown(source))


@pytest.mark.parametrize("source", HOSTILE_INPUTS)
def test_hostile_plain_text_yields_only_line_breaks(source: str) -> None:
    doc = parse(render_plain(source))
    assert set(doc.tags()) <= {"br"}
    assert all(not element.attrs for element in doc.elements)


def test_raw_html_is_shown_as_text_not_markup() -> None:
    doc = assert_only_safe_markup(render_markdown('<div id="messages" hx-swap-oob="true">'))
    assert doc.tags() == ["p"]
    assert doc.visible_text().strip() == '<div id="messages" hx-swap-oob="true">'


def test_script_breakout_is_shown_as_text() -> None:
    doc = assert_only_safe_markup(render_markdown("</script><script>alert(1)</script>"))
    assert "script" not in doc.tags()
    assert "<script>alert(1)</script>" in doc.visible_text()


def test_image_is_replaced_by_its_alt_text() -> None:
    doc = assert_only_safe_markup(render_markdown("see ![a *cat*](http://evil/x.png) here"))
    assert "img" not in doc.tags()
    assert doc.visible_text().strip() == "see a cat here"


def test_image_alt_text_is_escaped() -> None:
    html = render_markdown("![<b onclick=x>hi</b>](https://e.example/x.png)")
    doc = assert_only_safe_markup(html)
    assert doc.tags() == ["p"]
    assert "<b onclick=x>hi</b>" in doc.visible_text()


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "[x](/accounts/logout/)",
    ],
)
def test_unsafe_link_targets_produce_no_href(source: str) -> None:
    doc = assert_only_safe_markup(render_markdown(source))
    assert all("href" not in element.attrs for element in doc.elements)


def test_https_link_gets_rel_nofollow_noopener_and_no_target() -> None:
    doc = assert_only_safe_markup(render_markdown('[docs](https://example.com/a?b=1&c=2 "Docs")'))
    [link] = doc.find("a")
    assert link.attrs == {
        "href": "https://example.com/a?b=1&c=2",
        "title": "Docs",
        "rel": EXPECTED_REL,
    }


def test_autolinks_for_https_and_email_are_kept() -> None:
    doc = assert_only_safe_markup(render_markdown("<https://example.com> <me@example.com>"))
    hrefs = [link.attrs["href"] for link in doc.find("a")]
    assert hrefs == ["https://example.com", "mailto:me@example.com"]


def test_reference_style_link_with_safe_url_is_rendered() -> None:
    doc = assert_only_safe_markup(render_markdown("[docs][ref]\n\n[ref]: https://example.com/d"))
    [link] = doc.find("a")
    assert link.attrs["href"] == "https://example.com/d"
    assert doc.visible_text().strip() == "docs"


def test_html_in_code_span_is_shown_escaped() -> None:
    html = render_markdown("run `<img src=x onerror=alert(1)>` now")
    doc = assert_only_safe_markup(html)
    assert doc.tags() == ["p", "code"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x onerror=alert(1)>" in doc.visible_text()


def test_html_in_fenced_code_block_is_shown_escaped() -> None:
    html = render_markdown('```html\n<div hx-get="/x" id="messages"></div>\n```')
    doc = assert_only_safe_markup(html)
    assert doc.tags() == ["pre", "code"]
    assert doc.find("code")[0].attrs == {"class": "language-html"}
    assert '<div hx-get="/x" id="messages"></div>' in doc.visible_text()


def test_code_block_keeps_language_class() -> None:
    doc = assert_only_safe_markup(render_markdown("```Python\nprint('hi')\n```"))
    [code] = doc.find("code")
    assert code.attrs == {"class": "language-python"}
    assert doc.visible_text().strip() == "print('hi')"


def test_code_block_with_symbol_language_keeps_class() -> None:
    doc = assert_only_safe_markup(render_markdown("```c++\nint x;\n```"))
    assert doc.find("code")[0].attrs == {"class": "language-c++"}


def test_code_block_with_hostile_language_drops_class() -> None:
    doc = assert_only_safe_markup(render_markdown('```x" onmouseover="alert(1)\ncode\n```'))
    assert doc.find("code")[0].attrs == {}


def test_bold_italic_and_strikethrough_render() -> None:
    doc = assert_only_safe_markup(render_markdown("**bold** *em* ~~gone~~"))
    tags = doc.tags()
    assert "strong" in tags
    assert "em" in tags
    assert "s" in tags or "del" in tags


def test_lists_render() -> None:
    doc = assert_only_safe_markup(render_markdown("- a\n- b\n\n1. one\n2. two"))
    assert doc.tags().count("li") == 4
    assert "ul" in doc.tags()
    assert "ol" in doc.tags()


def test_table_renders_without_style_attributes() -> None:
    doc = assert_only_safe_markup(render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |"))
    assert {"table", "thead", "tbody", "tr", "th", "td"} <= set(doc.tags())
    assert all(not element.attrs for element in doc.elements)


def test_blockquote_and_rule_render() -> None:
    doc = assert_only_safe_markup(render_markdown("> quoted\n\n---"))
    assert doc.tags() == ["blockquote", "p", "hr"]


def test_headings_are_demoted_below_page_headings() -> None:
    doc = assert_only_safe_markup(render_markdown("# One\n\n## Two\n\n###### Six"))
    assert doc.tags() == ["h3", "h4", "h6"]


def test_heading_attribute_syntax_is_not_interpreted() -> None:
    doc = assert_only_safe_markup(render_markdown("# Title {#messages}"))
    [heading] = doc.elements
    assert heading.attrs == {}
    assert "{#messages}" in doc.visible_text()


def test_render_markdown_returns_safe_string() -> None:
    assert isinstance(render_markdown("hi"), SafeString)
    assert isinstance(render_markdown(""), SafeString)
    assert render_markdown("") == ""


def test_render_plain_escapes_and_converts_newlines() -> None:
    html = render_plain("a <b>&\r\nc\nd")
    assert isinstance(html, SafeString)
    assert html == "a &lt;b&gt;&amp;<br>c<br>d"


def test_render_plain_does_not_interpret_markdown() -> None:
    assert render_plain("**not bold** [x](https://e.example)") == (
        "**not bold** [x](https://e.example)"
    )


def test_render_plain_empty_is_empty_safe_string() -> None:
    html = render_plain("")
    assert isinstance(html, SafeString)
    assert html == ""


def test_plain_words_are_what_a_reader_of_the_rendered_markdown_sees():
    text = "# Your **answer**\n\n- one\n- two ~~three~~\n\n> quoted `code` and [a link](https://x.test)"

    assert plain_words(text, enough=1000) == "Your answer one two three quoted code and a link"


def test_plain_words_stop_after_enough_whole_paragraphs():
    text = "\n\n".join(["**First** paragraph."] + [f"Paragraph {n}." for n in range(500)])

    words = plain_words(text, enough=40)

    assert words.startswith("First paragraph. Paragraph 0.") and "Paragraph 10." not in words
