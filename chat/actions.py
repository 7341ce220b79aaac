"""The socket's action registry: each subject registers the actions its pages accept.

A browser frame's `action` field picks the handler registered for that name and the
conversation's kind, so a new feature adds actions in its own `actions.py` without
editing the consumer. `chat.live.actions` imports every subject's module and dispatches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from accounts.models import User
from chat.models import Conversation


class Page(Protocol):
    """What a handler may use of the open page (the consumer that received the frame)."""

    user: User
    conversation: Conversation
    channel_name: str
    state: dict[str, Any]  # per-page values a subject keeps between frames

    async def send_frame(self, html: str) -> None:
        """Send a fragment to this page only."""
        ...

    async def send_notice(self, text: str, *, level: str = "error") -> None:
        """Show a short notice on this page only (not stored)."""
        ...


Handler = Callable[[Page, dict[str, Any]], Awaitable[None]]
_HANDLERS: dict[tuple[str, str], Handler] = {}


class DuplicateActionError(Exception):
    """Two handlers were registered for one action on one kind of conversation."""


def register(name: str, handler: Handler, *, kinds: Iterable[str]) -> None:
    """Accept the action `name` on conversations of these kinds, handled by `handler`."""
    for kind in kinds:
        key = (name, str(kind))
        if key in _HANDLERS and _HANDLERS[key] is not handler:
            raise DuplicateActionError(f"{name!r} on {kind!r} is registered twice")
        _HANDLERS[key] = handler


def action(name: str, *, kinds: Iterable[str]) -> Callable[[Handler], Handler]:
    """Decorator form of `register`."""

    def decorate(handler: Handler) -> Handler:
        register(name, handler, kinds=kinds)
        return handler

    return decorate


def handler_for(name: object, kind: str) -> Handler | None:
    """The handler for an action on a conversation of `kind`, or None."""
    if not isinstance(name, str):
        return None
    return _HANDLERS.get((name, kind))


def registered() -> dict[tuple[str, str], Handler]:
    """Every (action, kind) registered, for tests and the docs."""
    return dict(_HANDLERS)


# --- page hooks: a subject's work when one of its pages syncs, beats or closes -------------------

PageHook = Callable[[Page], Awaitable[None]]
PAGE_EVENTS = ("resync", "heartbeat", "close")
_HOOKS: dict[tuple[str, str], list[PageHook]] = {}


def on_page(event: str, *, kinds: Iterable[str]) -> Callable[[PageHook], PageHook]:
    """Run the decorated hook after the socket's own work for `event` on these kinds.

    A resync hook sends the page what the subject keeps outside messages (a live class's
    current question), so `chat.live` never imports a subject to do it.
    """
    if event not in PAGE_EVENTS:
        raise ValueError(f"unknown page event {event!r}")

    def decorate(hook: PageHook) -> PageHook:
        for kind in kinds:
            hooks = _HOOKS.setdefault((event, str(kind)), [])
            if hook not in hooks:
                hooks.append(hook)
        return hook

    return decorate


async def run_page_hooks(event: str, page: Page) -> None:
    """Run the hooks registered for `event` on the page's kind of conversation."""
    for hook in _HOOKS.get((event, page.conversation.kind), []):
        await hook(page)
