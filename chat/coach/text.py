"""Splitting an answer into sentences, clauses and words, with character offsets.

Pure Python, no Django: the answer analyser runs on every learner answer and must stay
fast and deterministic. Every span is a half-open pair ``(start, end)`` into the text.
"""

from __future__ import annotations

import re

Span = tuple[int, int]

WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*|\d+(?:[.,]\d+)*%?")
# A sentence ends at . ! ? (or a line break) followed by space; "e.g." and "3.5" stay whole.
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\d)[.!?]+(?=\s|$)|\n+")
# Clause boundaries inside a sentence: a comma or semicolon before a connective, or the
# connective itself when it starts a new step of the story ("..., so I called them").
_CLAUSE_BREAK = re.compile(
    r"[;:]\s+|,\s+(?=(?:and|but|so|which|because|then|after|until|when|while|where|"
    r"as a result|in the end|this|that|it|i|we|my|our)\b)|"
    r"\s+(?=(?:so (?:i|we)|and then|and so|but then|which meant|which led|"
    r"because of (?:this|that)|as a result|in the end|after that|afterwards)\b)|"
    r"\s+(?=(?:and|but) (?:i|we|my|our|they|it|the|his|her|everyone|nobody)\b)",
    re.IGNORECASE,
)

_LEAD = re.compile(
    r"(?:(?:u+m+|u+h+|e+r+m*|well|so|okay|ok|actually|basically|like|oh|you know|i mean)"
    r"\s*,\s*|(?:u+m+|u+h+|e+r+m*|well|actually|basically)\s+)+",
    re.IGNORECASE,
)

NUMBER_WORDS = (
    r"two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundred|hundreds|thousand|thousands|million|millions|dozen|dozens|"
    r"half|double|doubled|twice|triple|tripled|quarter|percent|per cent"
)
# A quantity: a digit, a spelled-out number, a percentage, money or "twice as fast".
QUANTITY = re.compile(
    rf"\d|%|[$€£₩]|\b(?:{NUMBER_WORDS})\b|"
    r"\b(?:a|an|per) (?:minute|hour|day|week|month|year|quarter|semester)\b"
)


def sentences(text: str) -> list[Span]:
    """Sentence spans, trimmed of surrounding space (empty sentences dropped)."""
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end() if match.group().strip() else match.start()
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    return [s for s in (trim(text, a, b) for a, b in spans) if s[1] > s[0]]


def clauses(text: str, sentence: Span) -> list[Span]:
    """Clause spans inside one sentence: the unit that gets a STAR label."""
    start, end = sentence
    chunk = text[start:end]
    spans: list[Span] = []
    cursor = 0
    for match in _CLAUSE_BREAK.finditer(chunk):
        # A break needs a few words on each side: "so I" alone is not a clause.
        if len(WORD.findall(chunk[cursor : match.start()])) < 3:
            continue
        spans.append((start + cursor, start + match.start()))
        cursor = match.end()
    spans.append((start + cursor, end))
    out = []
    for a, b in spans:
        a, b = trim(text, a, b, punctuation=True)
        # "Um, so, basically, when I was..." — the clause starts after the interjections.
        lead = _LEAD.match(text, a, b)
        if lead and lead.end() < b:
            a = lead.end()
        if b > a:
            out.append((a, b))
    return out


def trim(text: str, start: int, end: int, *, punctuation: bool = False) -> Span:
    """Shrink a span past leading/trailing space (and commas when asked)."""
    strip = " \t\r\n,;:" if punctuation else " \t\r\n"
    while start < end and text[start] in strip:
        start += 1
    while end > start and text[end - 1] in strip:
        end -= 1
    return start, end


def words(text: str) -> list[str]:
    """The words of a text (letters with inner apostrophes, or numbers)."""
    return WORD.findall(text)


def has_quantity(text: str) -> bool:
    """True when the text holds a number: digits, %, money or a spelled-out number."""
    return QUANTITY.search(text.lower()) is not None


def lowered(text: str) -> str:
    """The text in lower case with the same offsets (characters whose lower case is longer,
    like "İ", are kept as they are)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
