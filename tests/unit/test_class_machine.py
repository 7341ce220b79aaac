"""The live session's state machine and join codes, without a database."""

from __future__ import annotations

import pytest

from chat.classes import joincodes, machine
from chat.classes.machine import InvalidMoveError, Position
from chat.models import JOIN_CODE_ALPHABET, new_join_code


def test_next_from_waiting_starts_at_question_one() -> None:
    assert machine.apply(Position("waiting", 0, 3), "next") == Position("running", 1, 3)


def test_next_and_prev_move_one_question() -> None:
    p = machine.apply(Position("running", 1, 3), "next")
    assert p == Position("running", 2, 3)
    assert machine.apply(p, "prev") == Position("running", 1, 3)


def test_no_next_after_the_last_question_and_no_prev_before_the_first() -> None:
    with pytest.raises(InvalidMoveError):
        machine.apply(Position("running", 3, 3), "next")
    with pytest.raises(InvalidMoveError):
        machine.apply(Position("running", 1, 3), "prev")


def test_pause_and_resume_keep_the_question() -> None:
    paused = machine.apply(Position("running", 2, 3), "pause")
    assert paused == Position("paused", 2, 3)
    assert machine.apply(paused, "resume") == Position("running", 2, 3)


@pytest.mark.parametrize(
    ("state", "move"),
    [("waiting", "pause"), ("waiting", "resume"), ("running", "resume"), ("paused", "pause"),
     ("paused", "next"), ("paused", "prev"), ("waiting", "prev")],
)  # fmt: skip
def test_moves_the_state_does_not_allow_are_refused(state: str, move: str) -> None:
    with pytest.raises(InvalidMoveError):
        machine.apply(Position(state, 1 if state != "waiting" else 0, 3), move)


@pytest.mark.parametrize("state", ["waiting", "running", "paused"])
def test_every_open_state_can_end(state: str) -> None:
    assert machine.apply(Position(state, 1, 3), "end").state == "ended"


@pytest.mark.parametrize("move", machine.MOVES)
def test_an_ended_session_accepts_nothing(move: str) -> None:
    with pytest.raises(InvalidMoveError):
        machine.apply(Position("ended", 2, 3), move)
    assert machine.allowed(Position("ended", 2, 3)) == set()


def test_a_class_without_questions_cannot_start() -> None:
    with pytest.raises(InvalidMoveError):
        machine.apply(Position("waiting", 0, 0), "next")


def test_unknown_move_is_refused() -> None:
    with pytest.raises(InvalidMoveError):
        machine.apply(Position("running", 1, 3), "skip")


def test_allowed_moves_are_the_coach_buttons() -> None:
    assert machine.allowed(Position("waiting", 0, 3)) == {"next", "end"}
    assert machine.allowed(Position("running", 2, 3)) == {"next", "prev", "pause", "end"}
    assert machine.allowed(Position("paused", 2, 3)) == {"resume", "end"}


def test_join_codes_use_six_unambiguous_characters() -> None:
    codes = {new_join_code() for _ in range(500)}
    assert len(codes) > 490
    for code in codes:
        assert len(code) == 6
        assert not set(code) & set("0O1IL")
        assert set(code) <= set(JOIN_CODE_ALPHABET)


def test_typed_codes_ignore_case_spaces_and_dashes() -> None:
    assert joincodes.normalise(" ab3 -d4e f ") == "AB3D4EF"
    assert joincodes.normalise("k7m 2pq") == "K7M2PQ"
    assert joincodes.looks_valid("K7M2PQ")


def test_codes_with_ambiguous_or_missing_characters_are_not_codes() -> None:
    assert not joincodes.looks_valid("K7M2P")
    assert not joincodes.looks_valid("K7M2P0")
    assert not joincodes.looks_valid("K7M2PI")
