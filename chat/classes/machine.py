"""The live session's state machine, as plain values: waiting → running ⇄ paused → ended.

Only the coach moves it (checked by the services); here is what each move does to the
state and the current question, so it is tested without a database or a socket.
"""

from __future__ import annotations

from dataclasses import dataclass

WAITING, RUNNING, PAUSED, ENDED = "waiting", "running", "paused", "ended"
MOVES = ("next", "prev", "pause", "resume", "end")


class InvalidMoveError(Exception):
    """A move that the session's state does not allow (e.g. resume while running)."""


@dataclass(frozen=True)
class Position:
    """Where a session stands: its state and current question (1-based; 0 before the first)."""

    state: str
    step: int
    total: int


def apply(position: Position, move: str) -> Position:
    """The position after `move`, or InvalidMoveError."""
    state, step, total = position.state, position.step, position.total
    if move not in MOVES:
        raise InvalidMoveError(move)
    if state == ENDED:
        raise InvalidMoveError("the session has ended")
    if move == "end":
        return Position(ENDED, step, total)
    if move == "next":
        if state == WAITING:
            if total < 1:
                raise InvalidMoveError("the class has no questions")
            return Position(RUNNING, 1, total)
        if state != RUNNING or step >= total:
            raise InvalidMoveError("no next question")
        return Position(RUNNING, step + 1, total)
    if move == "prev":
        if state != RUNNING or step <= 1:
            raise InvalidMoveError("no previous question")
        return Position(RUNNING, step - 1, total)
    if move == "pause":
        if state != RUNNING:
            raise InvalidMoveError("only a running session pauses")
        return Position(PAUSED, step, total)
    # resume
    if state != PAUSED:
        raise InvalidMoveError("only a paused session resumes")
    return Position(RUNNING, step, total)


def allowed(position: Position) -> set[str]:
    """The moves possible from `position` (which buttons the coach sees enabled)."""
    result = set()
    for move in MOVES:
        try:
            apply(position, move)
        except InvalidMoveError:
            continue
        result.add(move)
    return result
