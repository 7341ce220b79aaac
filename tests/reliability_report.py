"""The reliability and security suite's result table, and the page model its tests share.

Tests record one row per case with :func:`case`; when the session ends the table is written
to ``var/reliability.md`` (cases that did not run say so). A test run never rewrites a
committed file: ``make reliability-report`` runs the suite's files and ``make docs`` copies
the table to ``docs/reliability.md``, deliberately.
Test modules load this file as a pytest plugin: ``pytest_plugins = ["tests.reliability_report"]``.

:class:`Page` replays the frames a socket received the way the htmx ws extension swaps them
(every top-level element out of band), so a test can say what the person sees, count
duplicates, and check that nothing hostile survived in any frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "reliability.md"

# (id, case) in the order of the table.
CASES: list[tuple[str, str]] = [
    ("F1", "Browser closes mid-reply, 10 times in a row"),
    ("F2a", "Model API answers 429 (after the SDK's retry)"),
    ("F2b", "Model API answers 500 (after the SDK's retry)"),
    ("F2c", "Model API times out (no headers; after the SDK's retry)"),
    ("F2d", "Model stream stalls half-way (read timeout)"),
    ("F2e", "Model connection cut half-way"),
    ("F3", "Redis killed mid-reply, then restarted"),
    ("F4", "daphne gets SIGTERM mid-reply"),
    ("F4b", "daphne gets SIGKILL mid-reply (no chance to clean up)"),
    ("F5a", "SQLite write-locked 3 s by another writer (busy timeout 20 s)"),
    ("F5b", "SQLite write-locked 3 s, busy timeout 1 s"),
    ("F6a", "Member's channel over capacity (CHANNEL_CAPACITY=3)"),
    ("F6b", "Member's page stops reading (real daphne, raw socket)"),
    ("H1a", "Handshake without a session cookie"),
    ("H1b", "Handshake from a foreign Origin"),
    ("H1c", "Handshake without an Origin header"),
    ("H1d", "Signed-in non-member / someone else's conversation"),
    ("H1e", "Logged out in another tab while the socket is open"),
    ("H2a", "Malformed and wrongly typed frames"),
    ("H2b", "Binary frame, unknown action, 2 MB frame"),
    ("H2c", "1,000 messages at once from one socket"),
    ("H2d", "More sockets than MAX_SOCKETS_PER_USER"),
    ("H3a", "Hostile HTML in user text"),
    ("H3b", "Hostile Markdown/HTML in model output"),
    ("H3c", "Token that tries to close its span and swap out of band"),
    ("H4a", "Spoofed X-Forwarded-For"),
    ("H4b", "Identity in the frame payload or the query string"),
    ("H4c", "Forged, stale and replayed gateway signatures"),
    ("H5a", "POST without a CSRF token, every POST URL"),
    ("H5b", "Production settings: check --deploy, ALLOWED_HOSTS=*"),
    ("H6a", "Password guessing on the admin's log-in"),
    ("H6b", "Content-Security-Policy on every page"),
    ("H6c", "A 20-digit id in a URL"),
    ("H6d", "Sign-up with an address that already has an account"),
    ("H6e", "Spoofed X-Forwarded-For, no proxy trusted (the default)"),
    ("H6f", "Many people behind one load balancer, one of them guessing passwords"),
    ("H6g", "Log-in and sign-up while Redis is down"),
    ("H7a", "Handshake from another port or scheme of the site's own host"),
    ("H7b", "Password changed in another browser while a socket is open"),
    ("H7c", "Account deactivated, deleted or given another role while a socket is open"),
    ("H7d", "Session expired, deleted or no longer valid: the heartbeat's check"),
    ("H7e", "A lone surrogate and deeply nested JSON in a frame"),
    ("H7f", "20 frames that crash a handler, then a 21st page"),
    ("H7g", "5-second flood of heartbeats and resyncs from one socket (real daphne)"),
    ("H7h", "One account creates 40 rooms, renames 31 times"),
    ("H7i", "Private room and unknown id, to an outsider: pages, older, exports, socket"),
]
_TITLES = dict(CASES)


@dataclass
class Row:
    """One line of the table."""

    case: str
    injected: str = ""
    result: str = ""
    sent: Any = "–"
    stored: Any = "–"
    delivered: Any = "–"
    bystander: str = "–"
    status: str = "running"

    def set(self, **values: Any) -> Row:
        for name, value in values.items():
            setattr(self, name, value)
        return self


ROWS: dict[str, Row] = {}


@contextlib.contextmanager
def case(case_id: str, injected: str) -> Iterator[Row]:
    """Record a case: the row is `pass` when the block ends normally, `FAIL` when it raises."""
    if case_id not in _TITLES:
        raise KeyError(f"unknown case {case_id!r}: add it to CASES")
    row = Row(case=case_id, injected=injected)
    ROWS[case_id] = row
    try:
        yield row
    except BaseException:
        row.status = "FAIL"
        raise
    row.status = "pass"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole document."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability and security",
        "",
        "<!-- Generated by tests/reliability_report.py from a run of "
        "tests/integration/test_reliability_faults.py, test_security_input.py, "
        "test_security_http.py and test_security_live.py. "
        "Do not edit by hand: run `make reliability-report`, then `make docs`. -->",
        "",
        f"Produced by the test suite on {now}. Every row is one test case; **Status** is the "
        "outcome of that run.",
        "",
        "Counts: **sent** = messages people sent (plus replies asked of the model, when the "
        "case has any); **stored** = rows in the database for them; **delivered** = distinct "
        "messages the affected page shows after it caught up (reload/resync), each compared "
        "with its stored text and status. Every case also checks that no page got a message "
        "twice. **Bystander** = what another person's open conversation did meanwhile.",
        "",
        "| # | Case | Injected | Result | Sent | Stored | Delivered | Bystander | Status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case_id, title in CASES:
        row = ROWS.get(case_id) or Row(case=case_id, status="not run")
        cells = [
            case_id,
            title,
            row.injected,
            row.result,
            row.sent,
            row.stored,
            row.delivered,
            row.bystander,
            row.status,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", NOTES.strip(), ""]
    return "\n".join(lines)


NOTES = """
## Decisions the suite pins down

* **No `Origin` header** on a websocket handshake is refused (403 at the handshake), like a
  foreign one. Browsers always send Origin on websockets, so only scripts are affected, and
  the session cookie alone must never be enough to open a socket (cross-site websocket
  hijacking).
* **The Origin is compared whole** (H7a; `project/origins.py`): scheme, host and port must
  equal one of `CSRF_TRUSTED_ORIGINS` or the request's own origin (its Host, which must be
  an allowed host, and its scheme: `wss`, or `X-Forwarded-Proto` as `SECURE_PROXY_SSL_HEADER`
  says). Behind the TLS proxy the site's origin is `https://host`; put any other origin that
  serves the pages (another port, a second name) in `CSRF_TRUSTED_ORIGINS`.
* **A socket lives only as long as the rights it was opened with** (H7b–H7d): logging out, a
  password change or reset, deactivation, deletion and a change of role or staff status
  close every page of the person with 4401 at once (`chat/live/signals.py`); every heartbeat
  (20 s) also checks that the socket's session still exists, names the user, matches their
  password, and that the account is active (one session read and one user read), so a
  session that expires or is deleted behind the app's back ends its sockets within one
  heartbeat. An own password change closes that browser's other pages too: they reload.
* **Frames are validated before use** (H7e): at most `MAX_FRAME_DEPTH` (8) levels of nesting,
  checked before `json.loads` (whose recursion a deep value exhausts), and every string
  valid Unicode (a lone surrogate cannot be stored or sent); each gets a notice. A handler
  that crashes anyway (H7f) is logged, closes its socket with 1011, and the disconnect
  cleanup still runs.
* **Every socket has a frame budget** (H7g; `chat/live/limits.py`): 10 frames a second with
  a burst of 40, taken before the frame is parsed, and the actions that read the database
  have their own smaller budget on top (heartbeat and resync 0.5/s, burst 3 and 5; typing and
  stop 1/s). A frame over budget is dropped without parsing or database work; the page is
  told once per 10 s ("You are sending too fast"), and a socket that goes on past
  `SOCKET_FRAMES_DROPPED_MAX` (500) dropped frames in 10 s is closed with **4429** (the code
  also used for too many open pages: "too many", reload to continue). All are settings.
* **Rooms per person** (H7h): 10 new rooms and 30 renames or new invite links an hour
  (`ROOMS_CREATED_PER_HOUR`, `ROOM_CHANGES_PER_HOUR`; cache counters), answered 429 with the
  reason on the page. The room list shows rooms with life first (one's own rooms, rooms with
  more than their owner, rooms with a message), newest activity first; a room of one person
  with no message sinks below them.
* **Private rooms do not exist to outsiders** (H7i): their page, "older" page, exports, join
  URL and socket answer exactly like an unknown id (404, 4404).
* **Shutdown** (SIGTERM to daphne): running replies are cancelled before the reactor stops and
  stored `failed` with `metadata.error = "interrupted"`, their text so far, an error notice
  in the chat, and the quota credit back; the upstream model request is closed. A process
  that is killed outright (SIGKILL, power loss) cannot do this: a reply left `streaming` and
  unsaved for `REPLY_STALE_SECONDS` (default: longer than every model attempt can take) is
  stored the same way by the next page load, resync or heartbeat that meets it (F4b), or by
  `manage.py recover_replies` from cron.
* **Redis down**: frames of a running reply that cannot be published are dropped, never the
  reply: it keeps streaming and saving; pages whose socket broke reconnect and catch up from
  the database (seq-ordered, no duplicates). `/health/detailed/` answers 503 while Redis is
  down and 200 again once it is back.
* **A slow or stalled page** never slows the others: the group drops frames for a channel over
  capacity, and the consumer fills any seq gap from the database; a page that reconnects
  resyncs from its last seq.

* **Sign-up does not tell who has an account** (H6d): allauth can answer a known address like
  a new one only when the address must be confirmed, so a sign-up confirms it with a code
  e-mailed to it and typed on the next page (same tab, no link); a known address gets the
  same page and its owner an "account already exists" e-mail. People who signed in before,
  and accounts made without allauth (demo data, createsuperuser), are not asked for a code
  at log-in; a sign-up that never entered its code is, at its next log-in.
* **Content-Security-Policy** (H6b; `tests/e2e/test_csp.py` in a browser): scripts from
  'self' only (htmx and its ws extension are files), the two per-person `<style>` blocks by
  nonce, htmx's injected indicator style switched off (its rules are in app.css), the page's
  own `ws(s)://host` in connect-src, frame-ancestors 'none'. Enforced unless
  `CSP_REPORT_ONLY=1` (the default only with `DEBUG=1`).

## What the suite found, and what changed

* **Redis down killed the reply** (F3): a `group_send` error inside the token loop ended the
  reply as `failed` after a few words. `chat/coach/tasks.py` now publishes through
  `events.publish_safely()`, which logs and carries on; the reply's control group is joined
  inside its `try` and joined again when the layer comes back.
* **SIGTERM left replies `streaming` for ever** (F4): daphne stopped the event loop under the
  reply task. `project/asgi.py` adds a reactor "before shutdown" trigger that awaits
  `tasks.shutdown()`.
* **A reconnecting page never learnt that a reply ended** (F3, F4, and
  `tests/e2e/test_reliability.py` in a browser): resync sent only newer seqs, so a page that
  missed the final frame kept the cursor for ever. `static/js/app.js` sends the ids it shows
  as streaming; the consumer answers with the final frame of those that ended.
* **One slow query stalled every stream in the process** (F5a: a bystander's tokens arrived
  all at once after the 3 s lock): channels' `dispatch` runs `close_old_connections()` in the
  single shared sync thread before every event, token frames included. `ChatConsumer.dispatch`
  skips it (its database calls close old connections themselves).
* **A reply whose final write met a locked database stayed `streaming`** (F5b): the write is
  now retried (5 attempts, 1 s apart).
* **A socket from another port or scheme of the same host was accepted** (H7a):
  `AllowedHostsOriginValidator` compared the host name only. Now the whole origin counts.
* **Sockets outlived the rights they were opened with** (H7b–H7d): after a password change
  or deactivation the open socket still posted. Now they close (4401), by signal and on the
  heartbeat.
* **A lone surrogate or deeply nested JSON closed the socket with 1011** (H7e), and a crashed
  consumer never ran its cleanup (H7f: 20 crashes left 20 sockets registered and the 21st
  page was refused with 4429). Both fixed; cleanup runs however the consumer ends.
* **Only `send` was rate-limited** (H7g, H2c): a heartbeat or resync flood was queued whole and
  worked off for minutes, each frame with database round trips, while everyone else's
  database work waited behind it. Now frames over budget are dropped before parsing and a
  flooding socket is closed.
* **One account could create rooms without limit** (H7h) and fill everyone's room list.
* **`{"action": "resync", "last_seq": 10**30}` crashed the socket** (H2a: OverflowError from
  the database). It now gets the "Bad resync request." notice.

* **The admin's log-in had no failed-login limit** (H6a: 30 wrong passwords answered, then
  the right one signed in). `/admin/login/` now sends to allauth's log-in (`next` kept), which
  counts failures; a signed-in person who is not staff gets 403.
* **A 20-digit id in a URL was a 500** (H6c: OverflowError from the database). The `id` path
  converter (`project/converters.py`, 1-18 digits) makes it a 404.
* **Behind a load balancer everyone shared one failed-login counter** (H6f). With
  `TRUSTED_PROXY_COUNT` (or `TRUSTED_CLIENT_IP_HEADER`) set, the client's address comes from
  the balancer's header; unset (the default), X-Forwarded-For is ignored (H6e, H4a).
* **Log-in and sign-up were 500 while Redis was down** (H6g: allauth's rate-limit counters are
  in the cache). `project/cache.py` answers from local memory meanwhile (limits stay on, per
  process), logs once, retries Redis every 5 s; `/health/detailed/` shows the cache `degraded`.

## Not covered

* Someone who signs up with an address that has no account can then try to log in with the
  password they chose: a pending account asks for its code, a real one says the password is
  wrong. allauth creates the account before the code is entered, so this second step still
  tells the two apart (and needs a sign-up per address probed, rate-limited per IP).

* After SIGKILL, the tokens a page saw in the last save interval (`STREAM_SAVE_INTERVAL`,
  1 s) before the process died are not stored: the page's final frame shows what was saved.
* A page learns that an orphaned reply ended at its next heartbeat after
  `REPLY_STALE_SECONDS` (or on reload), not at once: with several processes, one cannot tell
  sooner whether another, still alive, is writing the reply.
"""


def write(target: Path = OUT) -> Path:
    """Write the document to var/ (never to docs/: `make docs` copies it there)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    return target


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if ROWS:
        path = write()
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"reliability table: {path}")


# --------------------------------------------------------------------------- page model

VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source"}


@dataclass
class Node:
    """A parsed element."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        parts: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag == "br":
                parts.append("\n")
            else:
                parts.append(child.text())
        return "".join(parts)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, predicate: Any) -> Node | None:
        return next((n for n in self.walk() if predicate(n)), None)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


# Inside a message body only these may appear (what rendering.py allows, plus the token span).
BODY_TAGS = {
    "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "span",
}  # fmt: skip
BODY_ATTRS = {"href", "title", "rel", "class"}
# A learner's answer in practice: its feedback highlights, and nothing else, are marks.
MARK_KINDS = {"filler", "hedge", "we", "situation", "task", "action", "result"}
_FEEDBACK_ID = re.compile(r"feedback-([0-9a-f-]{36})$")
WIDGET_IDS = {
    "notice",
    "quota-box",
    "composer-input",
    "speech-seconds",
    "typing",
    "presence",
    "conv-title",
}
_MESSAGE_ID = re.compile(r"message-([0-9a-f-]{36})$")
_BODY_ID = re.compile(r"#message-([0-9a-f-]{36})-body$")
# A growing reply's closed blocks, rendered (beforeend), and its open tail (replaced).
_BLOCKS_ID = re.compile(r"#message-([0-9a-f-]{36})-blocks$")
_TAIL_ID = re.compile(r"message-([0-9a-f-]{36})-body$")


def body_problems(body: Node, where: str) -> list[str]:
    """Anything in untrusted content that the browser or htmx would act on."""
    problems = []
    for node in body.walk():
        if node is body:
            continue
        if node.tag == "mark" and set(node.attrs) == {"data-kind"}:
            if node.attrs["data-kind"] not in MARK_KINDS:
                problems.append(f"{where}: mark of kind {node.attrs['data-kind']!r}")
            continue
        if node.tag not in BODY_TAGS:
            problems.append(f"{where}: <{node.tag}> in content")
        for name, value in node.attrs.items():
            if name not in BODY_ATTRS:
                problems.append(f"{where}: attribute {name}={value!r} in content")
            if name == "href" and not re.match(r"(https?://|mailto:)", value, re.I):
                problems.append(f"{where}: link to {value!r}")
            if name == "class" and node.tag != "code":
                problems.append(f"{where}: class on <{node.tag}>")
    return problems


@dataclass
class Shown:
    """A message as a page shows it."""

    id: str
    role: str
    status: str
    kind: str
    seq: int
    author: str
    body: str  # what the page shows: closed blocks' text, then the open tail
    node: Node
    blocks: str = ""  # the closed blocks' text alone (a growing reply)

    @classmethod
    def from_node(cls, node: Node) -> Shown:
        match = _MESSAGE_ID.match(node.attrs.get("id", ""))
        if node.tag != "article" or match is None:
            raise ValueError(f"not a message: <{node.tag} {node.attrs}>")
        body = node.find(lambda n: n.attrs.get("id", "").endswith("-body"))
        blocks_node = node.find(lambda n: n.attrs.get("id", "").endswith("-blocks"))
        blocks = blocks_node.text() if blocks_node else ""
        return cls(
            id=match.group(1),
            role=node.attrs.get("data-role", ""),
            status=node.attrs.get("data-status", ""),
            kind=node.attrs.get("data-kind", ""),
            seq=int(node.attrs.get("data-seq") or 0),
            author=node.attrs.get("data-author", ""),
            body=blocks + (body.text() if body else ""),
            node=node,
            blocks=blocks,
        )


class Page:
    """What one open page shows, rebuilt from the frames its socket received."""

    def __init__(self, name: str = "page") -> None:
        self.name = name
        self.messages: dict[str, Shown] = {}
        self.duplicates: list[str] = []
        self.orphans: list[str] = []  # swaps whose target the page does not have
        self.notices: list[str] = []
        self.cards: dict[str, str] = {}  # feedback card status per answer, as replaced
        self.widgets: dict[str, str] = {}
        self.problems: list[str] = []
        self.frames: list[str] = []
        self.token_frames = 0
        self.token_times: list[float] = []  # time.monotonic() when each token frame was applied
        self.token_texts: list[str] = []  # the text each token frame carried
        self.streamed: dict[str, str] = {}  # body text just before the final frame replaced it
        self.composer_cleared = 0
        self.largest_batch = 0  # most messages appended by one frame (a gap fill or a resync)

    # -- what the person sees
    def last_seq(self) -> int:
        return max((m.seq for m in self.messages.values()), default=0)

    def ordered(self) -> list[Shown]:
        return sorted(self.messages.values(), key=lambda m: m.seq)

    def by_role(self, role: str) -> list[Shown]:
        return [m for m in self.ordered() if m.role == role]

    def streaming(self) -> list[Shown]:
        return [m for m in self.messages.values() if m.status == "streaming"]

    # -- frames
    def load_html(self, html: str) -> None:
        """A full page (GET): its #messages list."""
        root = parse(html)
        messages = root.find(lambda n: n.attrs.get("id") == "messages")
        if messages is None:
            raise AssertionError(f"{self.name}: no #messages in the page")
        for node in messages.walk():
            if node.tag == "article" and _MESSAGE_ID.match(node.attrs.get("id", "")):
                self._append(node, "page")

    def apply(self, html: str) -> None:
        self.frames.append(html)
        for el in parse(html).children:
            if isinstance(el, str):
                if el.strip():
                    self.problems.append(f"bare text at top level: {el[:60]!r}")
                continue
            oob = el.attrs.get("hx-swap-oob")
            el_id = el.attrs.get("id", "")
            if oob == "beforeend:#messages":
                batch = [c for c in el.children if isinstance(c, Node)]
                self.largest_batch = max(self.largest_batch, len(batch))
                for child in el.children:
                    if isinstance(child, str):
                        if child.strip():
                            self.problems.append(f"text in append frame: {child[:60]!r}")
                    else:
                        self._append(child, "append")
            elif oob and _BODY_ID.match(oob.split(":", 1)[-1]):
                self._tokens(el, _BODY_ID.match(oob.split(":", 1)[-1]).group(1))
            elif oob and _BLOCKS_ID.match(oob.split(":", 1)[-1]):
                self._blocks(el, _BLOCKS_ID.match(oob.split(":", 1)[-1]).group(1))
            elif oob == "true" and _TAIL_ID.match(el_id):
                self._tail(el, _TAIL_ID.match(el_id).group(1))
            elif oob == "delete" and _MESSAGE_ID.match(el_id):
                self.messages.pop(_MESSAGE_ID.match(el_id).group(1), None)
            elif oob == "true" and _MESSAGE_ID.match(el_id):
                self._replace(el)
            elif oob == "true" and _FEEDBACK_ID.match(el_id):
                self.cards[_FEEDBACK_ID.match(el_id).group(1)] = el.attrs.get("data-status", "")
            elif oob == "true" and el_id in WIDGET_IDS:
                self.widgets[el_id] = el.text().strip()
                if el_id == "quota-box":
                    number = el.find(lambda n: n.attrs.get("id") == "quota")
                    self.widgets["quota"] = number.text().strip() if number else ""
                if el_id == "notice" and el.text().strip():
                    self.notices.append(el.text().strip())
                if el_id == "composer-input":
                    self.composer_cleared += 1
            else:
                self.problems.append(f"unexpected top-level <{el.tag} id={el_id!r} oob={oob!r}>")

    def _check_message(self, node: Node, where: str) -> Shown:
        shown = Shown.from_node(node)
        body = node.find(lambda n: n.attrs.get("id", "").endswith("-body"))
        blocks = node.find(lambda n: n.attrs.get("id", "").endswith("-blocks"))
        for part in (body, blocks):
            if part is not None:
                self.problems += body_problems(part, f"{where} {shown.id[:8]}")
        for inner in node.walk():
            if inner is node:
                continue
            if "hx-swap-oob" in inner.attrs or (
                inner is not body and inner is not blocks and "id" in inner.attrs
            ):
                # The feedback card under an answer: replaced on its own when it fills in.
                if "hx-swap-oob" not in inner.attrs and _FEEDBACK_ID.match(inner.attrs["id"]):
                    continue
                self.problems.append(f"{where}: nested id/oob {inner.attrs}")
        return shown

    def _append(self, node: Node, where: str) -> None:
        shown = self._check_message(node, where)
        if shown.id in self.messages:
            self.duplicates.append(shown.id)
        self.messages[shown.id] = shown

    def _replace(self, node: Node) -> None:
        shown = self._check_message(node, "replace")
        old = self.messages.get(shown.id)
        if old is None:
            self.orphans.append(shown.id)
            return
        if old.status == "streaming" and shown.status != "streaming":
            self.streamed[shown.id] = old.body
        self.messages[shown.id] = shown

    def _tokens(self, el: Node, message_id: str) -> None:
        self.token_frames += 1
        self.token_times.append(time.monotonic())
        self.token_texts.append(el.text())
        for child in el.children:
            if not isinstance(child, str):
                self.problems.append(f"element <{child.tag}> inside a token frame")
        if el.tag != "span" or set(el.attrs) != {"hx-swap-oob"}:
            self.problems.append(f"token frame wrapper <{el.tag} {el.attrs}>")
        target = self.messages.get(message_id)
        if target is None:
            self.orphans.append(message_id)
            return
        target.body += el.text()

    def _blocks(self, el: Node, message_id: str) -> None:
        """Closed blocks of a growing reply, rendered once (a numbered token frame)."""
        self.token_frames += 1
        self.token_times.append(time.monotonic())
        self.problems += body_problems(el, f"blocks {message_id[:8]}")
        target = self.messages.get(message_id)
        if target is None:
            self.orphans.append(message_id)
            return
        target.blocks += el.text()

    def _tail(self, el: Node, message_id: str) -> None:
        """The open block of a growing reply, as text again after blocks closed."""
        for child in el.children:
            if not isinstance(child, str):
                self.problems.append(f"element <{child.tag}> in a reply's open tail")
        target = self.messages.get(message_id)
        if target is None:
            self.orphans.append(message_id)
            return
        target.body = target.blocks + el.text()

    def summary(self) -> str:
        return json.dumps(
            {
                "messages": [(m.seq, m.role, m.status, m.body[:40]) for m in self.ordered()],
                "duplicates": self.duplicates,
                "orphans": self.orphans,
                "notices": self.notices[-5:],
                "problems": self.problems[:5],
            },
            ensure_ascii=False,
        )


def norm(text: str) -> str:
    """Whitespace-insensitive text, for comparing what is shown with what is stored."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- sockets


class Sock:
    """One open page: its socket and what it shows. Subclasses move the frames."""

    def __init__(self, name: str) -> None:
        self.page = Page(name)
        self.close_code: int | None = None

    async def _recv(self, timeout: float) -> str | None:
        """The next text frame; "" when none came in time; None once closed."""
        raise NotImplementedError

    async def send(self, payload: dict[str, Any] | str | bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def until(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Apply frames until predicate(page) holds; False on timeout or close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.page):
            left = deadline - loop.time()
            if left <= 0 or self.close_code is not None:
                return False
            frame = await self._recv(min(left, 0.5))
            if frame:
                self.page.apply(frame)
        return True

    async def quiet(self, seconds: float = 0.3, limit: float = 10.0) -> None:
        """Apply frames until none came for `seconds` (at most `limit` in all)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline and self.close_code is None:
            frame = await self._recv(seconds)
            if not frame:
                return
            self.page.apply(frame)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.close_code is None and loop.time() < deadline:
            frame = await self._recv(min(0.5, deadline - loop.time()))
            if frame:
                self.page.apply(frame)
        return self.close_code

    async def resync(self) -> None:
        """What static/js/app.js sends when the socket opens."""
        growing = [m.id for m in self.page.streaming()]
        await self.send(
            {"action": "resync", "last_seq": self.page.last_seq(), "streaming": growing}
        )

    async def say(self, text: str, **extra: Any) -> None:
        """What the composer's ws-send does: the form fields plus htmx's HEADERS."""
        await self.send(
            {"action": "send", "message": text, "HEADERS": {"HX-Request": "true"}, **extra}
        )


class InProc(Sock):
    """A socket on the ASGI application in this process (channels' WebsocketCommunicator)."""

    @classmethod
    async def open(
        cls, app: Any, path: str, headers: list[tuple[bytes, bytes]], name: str = "page"
    ) -> InProc:
        from channels.testing import WebsocketCommunicator

        sock = cls(name)
        sock.comm = WebsocketCommunicator(app, path, headers=headers)
        connected, code = await sock.comm.connect(timeout=5)
        if not connected:
            sock.close_code = code
        return sock

    async def _recv(self, timeout: float) -> str | None:
        if self.close_code is not None:
            return None
        if self.comm.future.done() and self.comm.output_queue.empty():
            self.comm.future.result()  # raise the application's crash, if any
            self.close_code = 1006
            return None
        try:
            out = await asyncio.wait_for(self.comm.output_queue.get(), timeout)
        except TimeoutError:
            return ""
        if out["type"] == "websocket.close":
            self.close_code = out.get("code", 1000)
            return None
        return out.get("text") or ""

    async def send(self, payload: dict[str, Any] | str | bytes) -> None:
        if isinstance(payload, bytes):
            await self.comm.send_to(bytes_data=payload)
        else:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            await self.comm.send_input({"type": "websocket.receive", "text": text})

    async def close(self) -> None:
        if not self.comm.future.done():
            await self.comm.disconnect(timeout=3)


class Remote(Sock):
    """A socket to a real server over TCP (the `websockets` client)."""

    @classmethod
    async def open(
        cls, url: str, *, cookie: str = "", origin: str | None = None, name: str = "page"
    ) -> Remote:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        sock = cls(name)
        headers = {"Cookie": cookie} if cookie else {}
        try:
            sock.ws = await connect(
                url,
                origin=origin,  # type: ignore[arg-type]
                additional_headers=headers,
                max_size=None,
                open_timeout=5,
                close_timeout=2,
                ping_interval=None,
            )
        except InvalidStatus as exc:
            sock.close_code = -exc.response.status_code  # refused at the handshake
            sock.ws = None
        except OSError:
            sock.close_code = -1  # nothing listening
            sock.ws = None
        return sock

    async def _recv(self, timeout: float) -> str | None:
        from websockets.exceptions import ConnectionClosed

        if self.close_code is not None or self.ws is None:
            return None
        try:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            return ""
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
            return None
        return frame if isinstance(frame, str) else ""

    async def send(self, payload: dict[str, Any] | str | bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        if self.ws is None or self.close_code is not None:
            return  # like a browser: a frame sent on a closed socket is lost
        try:
            await self.ws.send(payload if isinstance(payload, str | bytes) else json.dumps(payload))
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


# --------------------------------------------------------------------------- people and checks

ORIGIN = "http://127.0.0.1"


def _cookie_name() -> str:
    from django.conf import settings

    return settings.SESSION_COOKIE_NAME


@dataclass
class Person:
    """Someone signed in, with a conversation (their practice, or a room they are in)."""

    user: Any
    conv: Any
    cookie: str

    @property
    def path(self) -> str:
        return f"/ws/chat/{self.conv.pk}/"

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Handshake headers of a same-site page: session cookie and Origin."""
        return [
            (b"cookie", self.cookie_header.encode()),
            (b"origin", ORIGIN.encode()),
            (b"host", b"127.0.0.1"),
        ]

    @property
    def cookie_header(self) -> str:
        return f"{_cookie_name()}={self.cookie}"


def session_cookie(user: Any) -> str:
    """Sign `user` in (a real session row) and return the session cookie's value."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[_cookie_name()].value


def load_coach() -> Any:
    """The behavioural-interview coach, (re)loaded from the shipped data.

    Transactional tests flush the tables, data migrations included, so a later one cannot
    count on the migration's personas still being there.
    """
    from chat.coach.personas import PERSONAS
    from chat.models import Persona

    data = next(p for p in PERSONAS if p["slug"] == "interview-behavioural")
    persona, _created = Persona.objects.update_or_create(slug=data["slug"], defaults=data)
    return persona


def stored_messages(conv_id: Any) -> list[Any]:
    from chat.models import Message

    return list(Message.objects.filter(conversation_id=conv_id).order_by("seq"))


def expected_text(message: Any) -> str:
    """The text a page should show for a stored message (Markdown rendered when finished)."""
    from chat import frames

    return parse(str(frames.message_body(message))).text()


def assert_page_matches_db(page: Page, messages: list[Any]) -> None:
    """The page shows exactly the stored messages, once each, with their status and text."""
    assert not page.duplicates, page.summary()
    assert not page.problems, page.problems
    assert [m.id for m in page.ordered()] == [str(m.pk) for m in messages], page.summary()
    for shown, message in zip(page.ordered(), messages, strict=True):
        assert shown.status == message.status, (shown, message.status)
        assert shown.seq == message.seq
        assert norm(shown.body) == norm(expected_text(message)), (shown.body, message.content)


def assert_no_token_doubled(page: Page, messages: list[Any]) -> None:
    """Whatever streamed before a final frame is a prefix of the stored reply."""
    contents = {str(m.pk): m.content for m in messages}
    for message_id, streamed in page.streamed.items():
        assert norm(contents[message_id]).startswith(norm(streamed)), (streamed, message_id)


async def open_page(person: Person, name: str) -> InProc:
    from project.asgi import application

    sock = await InProc.open(application, person.path, person.headers, name)
    assert sock.close_code is None, sock.close_code
    await sock.resync()
    return sock


async def converse(sock: Sock, text: str, timeout: float = 10.0) -> float:
    """Send a practice message and wait for the whole reply; returns the seconds it took."""
    await sock.quiet(0.05)  # apply what already arrived, so "new" means new
    started = time.monotonic()
    before = {m.id for m in sock.page.by_role("assistant")}
    await sock.say(text)

    def done(page: Page) -> bool:
        new = [m for m in page.by_role("assistant") if m.id not in before]
        return bool(new) and new[-1].status != "streaming"

    assert await sock.until(done, timeout), sock.page.summary()
    return time.monotonic() - started


async def bystander_ok(sock: Sock, owner: Person, others: list[Person]) -> str:
    """The bystander's page stayed open, got no one else's messages, and still converses."""
    await sock.quiet(0.05)
    assert sock.close_code is None, f"bystander socket closed ({sock.close_code})"
    took = await converse(sock, "Still there? I am the bystander.")
    foreign: set[str] = set()
    for other in others:
        foreign |= {str(m.pk) for m in await sync_to_async(stored_messages)(other.conv.pk)}
    assert not foreign & set(sock.page.messages), "bystander saw someone else's messages"
    assert not sock.page.duplicates and not sock.page.problems, (
        sock.page.duplicates,
        sock.page.problems,
    )
    return f"open throughout; reply in {took:.2f} s"


# --- people of the suite (shared by every module that loads this plugin) ----------------------


@pytest.fixture
def coach(db: None) -> Any:
    """The behavioural coach (loaded again: transactional tests flush the migration's data)."""
    return load_coach()


@pytest.fixture
def person(make_user: Any, coach: Any) -> Any:
    """Make a signed-in person with a practice conversation: person("Alice", **user fields)."""
    from chat.practice import services as practice_services

    def make(nickname: str, **fields: Any) -> Person:
        user = make_user(nickname=nickname, **fields)
        conv = practice_services.practice_start(user=user, persona=coach)
        return Person(user, conv, session_cookie(user))

    return make


@pytest.fixture
def alice(person: Any) -> Person:
    """Alice, the attacker or the one whose page is hurt."""
    return person("Alice")


@pytest.fixture
def bob(person: Any) -> Person:
    """Bob, the bystander."""
    return person("Bob")


async def handshake(path: str, headers: list[tuple[bytes, bytes]], wait: float = 0.5) -> InProc:
    """Open a socket on the app in this process; give the server `wait` s to close it."""
    from project.asgi import application

    sock = await InProc.open(application, path, headers)
    if sock.close_code is None:
        await sock.wait_closed(wait)  # accepted, then maybe closed with a code
    return sock


def connections_of(user: Any) -> int:
    """The open sockets the app has registered for a user."""
    from chat.models import Connection

    return Connection.objects.filter(user=user).count()
