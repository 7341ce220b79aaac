"""People, sessions, conversations and rooms, written straight into the bench database.

Bulk inserts keep a 1,000-member room cheap to build. Call only after
`BenchEnv.setup_django()` and never from inside a running event loop.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

_batch = itertools.count(1)


@dataclass(frozen=True)
class Person:
    """A signed-in user: the websocket and HTTP clients present `session_key` as a cookie."""

    user_id: int
    session_key: str

    @property
    def cookie(self) -> str:
        return f"sessionid={self.session_key}"


def make_people(n: int, label: str) -> list[Person]:
    """Create `n` learners with an open session each (unusable passwords: no hashing cost)."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from accounts.models import User

    batch = next(_batch)
    users = User.objects.bulk_create(
        [
            User(
                email=f"{label}-{batch}-{i}@bench.invalid",
                nickname=f"{label} {batch}.{i}",
                password=make_password(None),
            )
            for i in range(n)
        ],
        batch_size=500,
    )
    store = SessionStore()
    backend = "django.contrib.auth.backends.ModelBackend"
    expires = timezone.now() + dt.timedelta(days=1)
    sessions = []
    people = []
    for user in users:
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {
            "_auth_user_id": str(user.pk),
            "_auth_user_backend": backend,
            "_auth_user_hash": user.get_session_auth_hash(),
        }
        sessions.append(
            Session(session_key=key, session_data=store.encode(data), expire_date=expires)
        )
        people.append(Person(user.pk, key))
    Session.objects.bulk_create(sessions, batch_size=500)
    return people


def persona() -> Any:
    """A persona shipped by the data migration (its prompt and questions go to the model)."""
    from chat.models import Persona

    return Persona.objects.filter(is_active=True).order_by("sort_order", "pk").first()


def make_practice(people: list[Person], *, opening: bool = False) -> list[str]:
    """One practice conversation per person; returns their ids.

    With `opening`, the coach's opening line is written as message 1 (as the app does),
    so a page that resyncs from 0 receives one frame and knows the socket is live.
    """
    from chat.models import Conversation, Membership, Message

    coach = persona()
    conversations = Conversation.objects.bulk_create(
        [
            Conversation(
                kind=Conversation.Kind.PRACTICE,
                title=f"bench practice {p.user_id}",
                persona=coach,
                owner_id=p.user_id,
                last_seq=1 if opening else 0,
            )
            for p in people
        ],
        batch_size=500,
    )
    Membership.objects.bulk_create(
        [
            Membership(conversation=c, user_id=c.owner_id, role=Membership.Role.OWNER)
            for c in conversations
        ],
        batch_size=500,
    )
    if opening:
        Message.objects.bulk_create(
            [
                Message(
                    conversation=c,
                    seq=1,
                    role=Message.Role.ASSISTANT,
                    content=(coach.opening_line if coach else "") or "Hello.",
                    metadata={"opening": True},
                )
                for c in conversations
            ],
            batch_size=500,
        )
    return [str(c.pk) for c in conversations]


def make_room(owner: Person, members: list[Person], *, title: str = "bench room") -> str:
    """A public room with `owner` and `members` in it; returns its id."""
    from chat.models import Conversation, Membership

    room = Conversation.objects.create(
        kind=Conversation.Kind.ROOM, title=title, owner_id=owner.user_id, is_public=True
    )
    rows = [Membership(conversation=room, user_id=owner.user_id, role=Membership.Role.OWNER)]
    rows += [
        Membership(conversation=room, user_id=m.user_id, role=Membership.Role.MEMBER)
        for m in members
        if m.user_id != owner.user_id
    ]
    Membership.objects.bulk_create(rows, batch_size=500)
    return str(room.pk)


def make_rooms(owner: Person, n: int, members_each: int = 3) -> list[str]:
    """`n` public rooms owned by `owner` (for the room list page)."""
    from chat.models import Conversation, Membership

    others = make_people(members_each, "roomie") if members_each else []
    rooms = Conversation.objects.bulk_create(
        [
            Conversation(
                kind=Conversation.Kind.ROOM,
                title=f"bench room {i}",
                topic="Small talk practice",
                owner_id=owner.user_id,
                is_public=True,
            )
            for i in range(n)
        ],
        batch_size=500,
    )
    rows = []
    for room in rooms:
        rows.append(Membership(conversation=room, user_id=owner.user_id, role="owner"))
        rows += [Membership(conversation=room, user_id=o.user_id) for o in others]
    Membership.objects.bulk_create(rows, batch_size=1000)
    return [str(r.pk) for r in rooms]


def fill_history(conversation_id: str, owner: Person, n: int, *, cards: int = 0) -> None:
    """Give a conversation `n` finished messages, alternating learner and coach.

    With `cards`, the newest `cards` answers get their feedback as a practice reply
    leaves it (the analysis, then the model's rubric), so the page shows their cards.
    """
    from chat.conversations import store_html
    from chat.models import Conversation, Message

    rows = []
    for seq in range(1, n + 1):
        mine = seq % 2 == 0
        rows.append(
            Message(
                conversation_id=conversation_id,
                seq=seq,
                author_id=owner.user_id if mine else None,
                role=Message.Role.USER if mine else Message.Role.ASSISTANT,
                content=(
                    f"Answer number {seq}: I led a small team through a migration."
                    if mine
                    else f"Question {seq}: **why** did that work? Tell me more about it."
                ),
            )
        )
    for row in rows:
        store_html(row)  # as stored when each reply ended
    Message.objects.bulk_create(rows, batch_size=500)
    Conversation.objects.filter(pk=conversation_id).update(last_seq=n)
    if cards:
        _give_cards(conversation_id, [r for r in rows if r.role == Message.Role.USER][-cards:])


def _give_cards(conversation_id: str, answers: list[Any]) -> None:
    from chat.coach import feedback
    from chat.coach.rubric import RUBRIC_AXES
    from chat.models import Conversation

    conversation = Conversation.objects.select_related("persona").get(pk=conversation_id)
    rubric: dict[str, Any] = {axis: {"score": 3, "reason": "Clear enough."} for axis in RUBRIC_AXES}
    rubric |= {
        "strength": "You named what you did.",
        "improvement": "Put a number on the result.",
        "rewrite": "I cut the release time from two days to two hours.",
        "corrections": [],
    }
    for answer in answers:
        stored = feedback.feedback_record(message=answer, conversation=conversation)
        feedback.feedback_complete(feedback_id=stored.pk, rubric=rubric, model="bench", metadata={})


def connections_open(conversation_ids: list[str] | None = None) -> int:
    """Sockets the app has registered as open (all, or on some conversations)."""
    from chat.models import Connection

    qs = Connection.objects.all()
    if conversation_ids is not None:
        qs = qs.filter(conversation_id__in=conversation_ids)
    return qs.count()


def message_texts(conversation_id: str) -> list[tuple[int, str, str, str]]:
    """(seq, role, status, content) of every saved message of a conversation."""
    from chat.models import Message

    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "role", "status", "content")
    )


def message_row(message_id: str) -> tuple[str, str, dict[str, Any]]:
    """(status, content, metadata) of one saved message."""
    from chat.models import Message

    row = Message.objects.filter(pk=message_id).values_list("status", "content", "metadata").first()
    return (row[0], row[1], row[2] or {}) if row else ("missing", "", {})


def forget_connections() -> None:
    """Drop socket records left by a daphne that was killed (its sockets never closed)."""
    from chat.models import Connection

    Connection.objects.all().delete()
