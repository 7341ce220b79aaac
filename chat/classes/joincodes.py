"""Join codes as people type them: any case, spaces and dashes ignored."""

from __future__ import annotations

from chat.models import JOIN_CODE_ALPHABET, JOIN_CODE_LENGTH


def normalise(typed: str) -> str:
    """The code as stored: upper case, without spaces or dashes."""
    return "".join(ch for ch in typed.upper() if not ch.isspace() and ch != "-")


def looks_valid(code: str) -> bool:
    """Whether a normalised code could be a join code at all (length and alphabet)."""
    return len(code) == JOIN_CODE_LENGTH and all(ch in JOIN_CODE_ALPHABET for ch in code)
