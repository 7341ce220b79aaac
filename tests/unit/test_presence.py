"""Presence coalescing: at most one announcement per room per interval, none lost at the end."""

from __future__ import annotations

import heapq
import socket
import uuid

import pytest
from django.core.cache import cache
from django.utils.html import format_html_join

from chat import frames
from chat.live import presence
from chat.models import Connection
from chat.rooms import services as rooms

pytestmark = pytest.mark.django_db

INTERVAL = 1.0


REDIS_URL = "redis://127.0.0.1:6379/13"


def _redis_up() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


# The coalescing state lives in the cache: LocMem on one process, Redis across processes.
@pytest.fixture(autouse=True, params=["locmem", "redis"])
def presence_settings(request, settings):
    settings.PRESENCE_INTERVAL = INTERVAL
    if request.param == "locmem":
        cache.clear()
        yield settings
        return
    # No skip: a machine of this kind runs Redis, and CI does too.
    assert _redis_up(), "Redis must be running on 127.0.0.1:6379 for this test"
    # A prefix of its own rather than clear(), which would flush the database for everyone.
    prefix = f"presence-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield settings
    client = cache._cache.get_client(write=True)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)


def test_first_change_in_a_quiet_room_flushes_at_once(room):
    assert presence.presence_changed(room.pk, now=100.0) == 0.0


def test_changes_while_a_flush_is_due_ride_on_it(room):
    assert presence.presence_changed(room.pk, now=100.0) == 0.0
    assert presence.presence_changed(room.pk, now=100.01) is None
    assert presence.presence_changed(room.pk, now=100.5) is None


def test_a_change_just_after_a_flush_goes_out_at_the_end_of_the_window(room):
    presence.presence_changed(room.pk, now=100.0)
    presence.presence_flush(room, now=100.0)
    # The trailing edge: not lost, not sent before the window is over.
    assert presence.presence_changed(room.pk, now=100.1) == pytest.approx(INTERVAL - 0.1)
    assert presence.presence_changed(room.pk, now=100.2) is None


def test_a_change_long_after_the_last_flush_goes_out_at_once(room):
    presence.presence_changed(room.pk, now=100.0)
    presence.presence_flush(room, now=100.0)
    assert presence.presence_changed(room.pk, now=105.0) == 0.0


def test_rooms_are_coalesced_separately(room, owner):
    other = rooms.room_create(owner=owner, name="Other")
    assert presence.presence_changed(room.pk, now=100.0) == 0.0
    assert presence.presence_changed(other.pk, now=100.0) == 0.0


def test_flush_reports_a_change_only_when_the_list_differs(room, owner, guest):
    presence.connection_open(owner, room, "page-kim")
    members, changed = presence.presence_flush(room, now=100.0)
    assert changed
    assert members == [(owner.pk, "Owner Kim")]

    presence.connection_open(owner, room, "page-kim-2")  # a second tab: same list
    assert presence.presence_flush(room, now=102.0) == ([(owner.pk, "Owner Kim")], False)

    presence.connection_open(guest, room, "page-lee")
    members, changed = presence.presence_flush(room, now=104.0)
    assert changed
    assert members == [(guest.pk, "Guest Lee"), (owner.pk, "Owner Kim")]

    guest.nickname = "Guest Lee Jr"
    guest.save(update_fields=["nickname"])
    assert presence.presence_flush(room, now=106.0)[1]

    presence.connection_close("page-lee")
    members, changed = presence.presence_flush(room, now=108.0)
    assert changed
    assert members == [(owner.pk, "Owner Kim")]


def test_a_flush_releases_the_window_for_the_next_change(room, owner):
    assert presence.presence_changed(room.pk, now=100.0) == 0.0
    presence.connection_open(owner, room, "page-kim")
    presence.presence_flush(room, now=100.0)
    assert Connection.objects.count() == 1
    # Without the release this change would wait for a flush nobody scheduled.
    assert presence.presence_changed(room.pk, now=100.3) == pytest.approx(INTERVAL - 0.3)


def test_a_join_storm_is_announced_once_per_interval_and_ends_with_everyone(room, monkeypatch):
    """1,000 joins in 10 s (time injected, flushes run when due): ~11 frames, the last one whole."""
    online: list[tuple[int, str]] = []
    monkeypatch.setattr(presence, "online_members", lambda conversation: list(online))
    joins = [(i * 0.01, (i, f"member {i:04d}")) for i in range(1000)]
    due: list[float] = []  # flush times scheduled by whoever owned the window
    shown: list[tuple[float, list[tuple[int, str]]]] = []

    def flush_due(until: float) -> None:
        while due and due[0] <= until:
            at = heapq.heappop(due)
            members, changed = presence.presence_flush(room, now=at)
            if changed:
                shown.append((at, members))

    for at, member in joins:
        flush_due(at)
        online.append(member)
        delay = presence.presence_changed(room.pk, now=at)
        if delay is not None:
            heapq.heappush(due, at + delay)
    flush_due(float("inf"))

    last_join = joins[-1][0]
    assert len(shown) <= last_join / INTERVAL + 2
    times = [at for at, _members in shown]
    assert all(b - a >= INTERVAL - 1e-9 for a, b in zip(times, times[1:], strict=False))
    final_at, final = shown[-1]
    assert len(final) == 1000
    assert last_join < final_at <= last_join + INTERVAL


def test_the_presence_frame_escapes_names_as_format_html_would():
    members = [(7, '<b>"Kim" & Lee\'s</b>'), (8, "Park")]
    expected_items = format_html_join("", '<li data-user="{}">{}</li>', members)
    html = frames.presence(members)
    assert f">{expected_items}</ul>" in html
    assert "<b>" not in html
    assert html.startswith(
        '<ul id="presence" hx-swap-oob="true" class="presence" data-testid="presence"'
    )
    assert frames.presence([]).endswith('aria-label="Online now"></ul>')


def test_a_closed_page_goes_and_what_it_saw_counts_as_read_in_one_call(room, guest):
    from chat.models import Membership

    presence.connection_open(guest, room, "page-lee")
    presence.connection_open(guest, room, "page-lee-2")
    presence.page_close("page-lee", guest, room, 7)
    assert list(Connection.objects.values_list("channel_name", flat=True)) == ["page-lee-2"]
    assert Membership.objects.get(conversation=room, user=guest).last_read_seq == 7
    # A page that saw nothing leaves the read point where it was.
    presence.page_close("page-lee-2", guest, room, 0)
    assert not Connection.objects.exists()
    assert Membership.objects.get(conversation=room, user=guest).last_read_seq == 7
