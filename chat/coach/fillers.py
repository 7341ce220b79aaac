"""Filler words and hedges, told apart from the same words used for their meaning.

"um", "uh", "er", "basically" and "actually" are always fillers. "like", "you know",
"I mean", "sort of" and "kind of" count only when they carry no meaning: "I like
football", "something like a reading club", "do you know the answer", "what I mean
is" and "what kind of bug" are not fillers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chat.coach.text import Span

ALWAYS = re.compile(r"\b(?:u+m+|u+h+m*|e+r+m*|h+m+|basically|actually)\b", re.IGNORECASE)
CANDIDATE = re.compile(r"\b(?:like|you know|i mean|sort of|kind of)\b", re.IGNORECASE)

# "like" as a verb or preposition: after a subject, an auxiliary, or a noun/verb it compares.
_LIKE_MEANING_BEFORE = re.compile(
    r"(?:\b(?:i|you|we|they|he|she|it|people|kids|children|friends|also|really|would|'d|do|"
    r"does|did|don't|doesn't|didn't|not|to|i'd|we'd|you'd|something|anything|nothing|"
    r"things|stuff|looks?|looked|looking|sounds?|sounded|feels?|felt|seems?|seemed|just|"
    r"much|more|most|exactly|someone|somebody|people|place|places|one|ones|others?|"
    r"what's|what|who|whom|whatever|a lot|very|much|is|was|were|be|are)|\w+s)\s+$",
    re.IGNORECASE,
)
_LIKE_FILLER_AFTER = re.compile(
    r"^\s*(?:,|\.|$|(?:um|uh|er|really|so|very|totally|literally|super|just|i|we|you|they|"
    r"he|she|it|it's|there|the whole|honestly)\b)",
    re.IGNORECASE,
)
_LIKE_AS = re.compile(
    r"^\s+(?:i|we|you|they|he|she) (?:said|say|told|mentioned|explained|wrote|expected)\b",
    re.IGNORECASE,
)
_DETERMINER_BEFORE = re.compile(
    r"\b(?:a|an|the|what|which|this|that|these|those|any|some|every|each|one|same|"
    r"different|all|no|other|another|many|several|my|your|our|their|his|her|its|"
    r"what's|first|only|right|wrong|new|particular|certain|specific)\s+$",
    re.IGNORECASE,
)
_YOU_KNOW_MEANING_BEFORE = re.compile(
    r"\b(?:do|did|does|don't|didn't|if|as|would|will|'d|you'll|ever|now|already|"
    r"probably|may|might|let me|to let)\s+$",
    re.IGNORECASE,
)
_YOU_KNOW_MEANING_AFTER = re.compile(
    r"^\s+(?:how|what|that|who|where|when|why|whether|if|the|a|an|it|him|her|them|me|us|"
    r"about|this|my|your|our|their|more|each|someone|something)\b",
    re.IGNORECASE,
)
_I_MEAN_MEANING_BEFORE = re.compile(r"\b(?:what|that|which|if|do|did|as)\s+$", re.IGNORECASE)
_I_MEAN_MEANING_AFTER = re.compile(r"^\s+(?:it|that|to|what|this|business)\b", re.IGNORECASE)

HEDGE = re.compile(
    r"\b(?:i think|i guess|i suppose|i believe|maybe|perhaps|probably|possibly|"
    r"i'm not sure|i am not sure|might have|may have|more or less)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Filler:
    """One filler: its form as written (lower case) and where it is."""

    form: str
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        return {"form": self.form, "start": self.start, "end": self.end}


def _context(text: str, start: int, end: int) -> tuple[str, str]:
    return text[max(0, start - 40) : start], text[end : end + 40]


def _clause_start(before: str) -> bool:
    """True when nothing but a sentence start or punctuation comes before."""
    stripped = before.rstrip()
    return not stripped or stripped[-1] in ".!?,;:—-" or stripped.lower().endswith(" and")


def _is_filler(form: str, text: str, start: int, end: int) -> bool:
    before, after = _context(text, start, end)
    comma_before = before.rstrip().endswith(",") or not before.strip()
    comma_after = after.startswith(",")
    if form == "like":
        if _LIKE_AS.match(after):
            return False  # "like I said" means "as I said"
        if comma_before and comma_after:
            return True
        if comma_after and not _LIKE_MEANING_BEFORE.search(before):
            return True
        if _LIKE_MEANING_BEFORE.search(before):
            # "was like, really" or "it was like so hard": a be-verb then a filler-ish word.
            return bool(
                re.search(r"\b(?:is|was|were|are|be|'s)\s+$", before, re.IGNORECASE)
                and re.match(r"^\s*(?:,|really|so|very|totally|super|um|uh)\b", after)
            )
        return _LIKE_FILLER_AFTER.match(after) is not None
    if form in ("sort of", "kind of"):
        return not _DETERMINER_BEFORE.search(before)
    if form == "you know":
        if _YOU_KNOW_MEANING_BEFORE.search(before):
            return False
        if comma_after or after.lstrip()[:1] in (".", "!", "?", "") or comma_before:
            return not (not comma_after and _YOU_KNOW_MEANING_AFTER.match(after))
        return False
    # "I mean"
    if _I_MEAN_MEANING_BEFORE.search(before) or _I_MEAN_MEANING_AFTER.match(after):
        return False
    return comma_after or _clause_start(before)


def canonical(form: str) -> str:
    """One spelling per filler: "umm" is "um", "erm" is "er"."""
    form = " ".join(form.lower().split())
    if re.fullmatch(r"u+m+", form):
        return "um"
    if re.fullmatch(r"u+h+m*", form):
        return "uh"
    if re.fullmatch(r"e+r+m*", form):
        return "er"
    if re.fullmatch(r"h+m+", form):
        return "hmm"
    return form


def find_fillers(text: str) -> list[Filler]:
    """Every filler in the text, in order of position."""
    found = [Filler(canonical(m.group()), m.start(), m.end()) for m in ALWAYS.finditer(text)]
    for match in CANDIDATE.finditer(text):
        form = canonical(match.group())
        if _is_filler(form, text, match.start(), match.end()):
            found.append(Filler(form, match.start(), match.end()))
    return sorted(found, key=lambda f: f.start)


def find_hedges(text: str) -> list[Span]:
    """Spans of hedging phrases ("I think", "maybe", "probably", ...)."""
    return [(m.start(), m.end()) for m in HEDGE.finditer(text)]


def plain_fillers(text: str) -> list[Filler]:
    """Every filler form matched as a plain word, meaning ignored (the baseline)."""
    found = [Filler(canonical(m.group()), m.start(), m.end()) for m in ALWAYS.finditer(text)]
    found += [Filler(canonical(m.group()), m.start(), m.end()) for m in CANDIDATE.finditer(text)]
    return sorted(found, key=lambda f: f.start)
