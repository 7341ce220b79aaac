"""The page cursor (chat.live.delivery.PageCursor): what one page is sent, on its own."""

from __future__ import annotations

from chat.live.delivery import MAX_SEQ, PageCursor, parse_last_seq
from chat.models import Message


def synced(last_seq: int = 5) -> PageCursor:
    return PageCursor(last_seq=last_seq)


def test_before_the_page_says_what_it_has_everything_is_dropped():
    cursor = PageCursor()
    decision = cursor.admit({"seq": 1, "html": "x"})
    assert not decision.forward
    assert cursor.last_seq is None


def test_the_next_message_is_forwarded_and_counted():
    cursor = synced(5)
    decision = cursor.admit({"seq": 6})
    assert decision.forward and decision.catch_up_until is None
    assert cursor.last_seq == 6


def test_a_message_the_page_has_is_not_sent_twice():
    cursor = synced(5)
    assert not cursor.admit({"seq": 5}).forward
    assert not cursor.admit({"seq": 3}).forward
    assert cursor.last_seq == 5


def test_a_gap_in_message_numbers_is_filled_from_the_database_first():
    cursor = synced(5)
    decision = cursor.admit({"seq": 9})
    assert decision.forward
    assert (decision.catch_up_after, decision.catch_up_until) == (5, 8)
    assert cursor.last_seq == 9


def test_token_frames_in_order_are_forwarded_and_repeats_dropped():
    cursor = synced()
    assert cursor.admit({"stream": "r", "part": 1}).forward
    assert cursor.admit({"stream": "r", "part": 2}).forward
    assert not cursor.admit({"stream": "r", "part": 2}).forward
    assert cursor.stream_parts == {"r": 2}


def test_a_missing_token_frame_asks_for_a_snapshot_and_holds_the_stream():
    cursor = synced()
    cursor.admit({"stream": "r", "part": 1})
    decision = cursor.admit({"stream": "r", "part": 3})
    assert decision.want_snapshot and not decision.forward
    # Later token frames wait for the snapshot: appending after a hole would garble the reply.
    assert not cursor.admit({"stream": "r", "part": 4}).forward
    assert "r" in cursor.awaiting_snapshot


def test_a_snapshot_resumes_the_stream_after_its_last_part():
    cursor = synced()
    cursor.admit({"stream": "r", "part": 1})
    cursor.admit({"stream": "r", "part": 3})
    assert cursor.admit({"snapshot": "r", "part": 4}).forward
    assert not cursor.admit({"stream": "r", "part": 4}).forward  # inside the snapshot
    assert cursor.admit({"stream": "r", "part": 5}).forward
    assert not cursor.awaiting_snapshot


def test_the_final_frame_ends_the_stream_whatever_was_missing():
    cursor = synced()
    cursor.admit({"stream": "r", "part": 1})
    cursor.admit({"stream": "r", "part": 3})  # a hole: waiting for a snapshot
    assert cursor.admit({"final": "r"}).forward
    assert "r" not in cursor.awaiting_snapshot and "r" not in cursor.stream_parts


def test_messages_shown_from_the_database_mark_growing_replies():
    cursor = synced(2)
    growing = Message(seq=4, status=Message.Status.STREAMING)
    done = Message(seq=3, status=Message.Status.COMPLETE)
    assert cursor.shown([done, growing]) is True
    assert cursor.last_seq == 4
    assert str(growing.pk) in cursor.awaiting_snapshot
    assert cursor.shown([done]) is False


def test_a_page_whose_access_ended_gets_nothing_more():
    cursor = synced()
    cursor.forget()
    assert not cursor.admit({"seq": 6}).forward


def test_resync_numbers_are_bounded_to_what_the_database_holds():
    assert parse_last_seq(7) == 7
    assert parse_last_seq("12") == 12
    assert parse_last_seq(None) == 0
    assert parse_last_seq(-3) == 0
    assert parse_last_seq(MAX_SEQ) == MAX_SEQ
    assert parse_last_seq(10**30) is None
    assert parse_last_seq("many") is None
    assert parse_last_seq([1]) is None


def test_a_snapshot_after_the_final_frame_is_dropped():
    """Point to point, a snapshot can arrive after the group's final frame: it is stale."""
    cursor = synced()
    cursor.shown([Message(seq=6, status=Message.Status.STREAMING, id="r")])
    assert cursor.admit({"final": "r"}).forward
    assert not cursor.admit({"snapshot": "r", "part": 3}).forward
    assert cursor.admit({"snapshot": "other", "part": 1}).forward
