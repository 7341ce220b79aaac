"""Fluency for conversation practice: vocabulary variety, spelling and a few grammar hints.

Only hints that are cheap and nearly always right: a past simple after "have" ("I have
saw" → "I have seen"), a present verb with a past time word ("Yesterday I go" → "Yesterday
I went"), "I am agree", "more better", "discuss about", "he don't". Spelling uses
pyspellchecker's English word list, loaded once on first use (about half a second).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from chat.coach.text import WORD

PARTICIPLES = {
    "saw": "seen", "went": "gone", "did": "done", "ate": "eaten", "took": "taken",
    "wrote": "written", "gave": "given", "spoke": "spoken", "drove": "driven",
    "broke": "broken", "chose": "chosen", "forgot": "forgotten", "began": "begun",
    "drank": "drunk", "swam": "swum", "knew": "known", "grew": "grown", "threw": "thrown",
    "flew": "flown", "fell": "fallen", "rode": "ridden", "sang": "sung", "stole": "stolen",
    "woke": "woken", "wore": "worn", "hid": "hidden", "shook": "shaken", "tore": "torn",
    "came": "come", "became": "become", "ran": "run", "mistook": "mistaken",
}  # fmt: skip
PAST = {
    "go": "went", "eat": "ate", "see": "saw", "have": "had", "do": "did", "buy": "bought",
    "meet": "met", "take": "took", "make": "made", "come": "came", "get": "got",
    "watch": "watched", "visit": "visited", "play": "played", "walk": "walked",
    "cook": "cooked", "stay": "stayed", "study": "studied", "drink": "drank",
    "swim": "swam", "write": "wrote",
    "find": "found", "give": "gave", "leave": "left", "sleep": "slept", "spend": "spent",
    "teach": "taught", "tell": "told", "say": "said", "run": "ran", "ride": "rode",
    "drive": "drove", "sing": "sang", "talk": "talked", "travel": "travelled",
    "enjoy": "enjoyed", "try": "tried", "work": "worked", "start": "started",
    "finish": "finished", "listen": "listened", "learn": "learned", "move": "moved",
    "bring": "brought", "catch": "caught", "fly": "flew", "wake": "woke", "lose": "lost",
    "win": "won", "become": "became", "begin": "began", "forget": "forgot", "hear": "heard",
    "are": "were", "am": "was", "decide": "decided",
}  # fmt: skip

# A regular -ed on an irregular verb ("eated", "goed"): a learner's mistake, not a typo, so it
# is a grammar hint with the real past form (a spelling checker offers "hated" for "eated").
OVERREGULAR = {
    "eated": "ate", "goed": "went", "buyed": "bought", "bringed": "brought",
    "catched": "caught", "teached": "taught", "thinked": "thought", "taked": "took",
    "maked": "made", "writed": "wrote", "drinked": "drank", "speaked": "spoke",
    "comed": "came", "gived": "gave", "finded": "found", "leaved": "left", "sleeped": "slept",
    "spended": "spent", "telled": "told", "sayed": "said", "drived": "drove", "losed": "lost",
    "heared": "heard", "knowed": "knew", "meeted": "met", "doed": "did", "haved": "had",
    "runned": "ran", "winned": "won", "swimmed": "swam", "getted": "got", "forgetted": "forgot",
    "beginned": "began", "becomed": "became", "rided": "rode", "flyed": "flew", "seed": "saw",
}  # fmt: skip
# Only as a verb after a subject: "I seed" is a mistake, "a seed" is not.
_OVERREGULAR = re.compile(
    rf"\b(?:i|we|they|you|he|she|it|my \w+|our \w+)\s+(?P<verb>{'|'.join(OVERREGULAR)})\b",
    re.IGNORECASE,
)

_HAVE_PAST = re.compile(
    r"\b(?P<have>have|has|had|'ve|'s)\s+(?:(?:already|just|never|ever|not)\s+)?"
    rf"(?P<verb>{'|'.join(PARTICIPLES)})\b",
    re.IGNORECASE,
)
_PAST_TIME = re.compile(
    r"\b(?:yesterday|last (?:night|week|weekend|month|year|summer|winter|spring|autumn|fall|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|time)|\w+ (?:days?|weeks?|"
    r"months?|years?) ago|ago|in 19\d\d|in 20[01]\d)\b",
    re.IGNORECASE,
)
# "Last year was hard, but now I am happy": a present time word keeps the present tense.
_PRESENT_TIME = re.compile(
    r"\b(?:now|today|these days|nowadays|currently|still|every|usually|always|since)\b",
    re.IGNORECASE,
)
_SUBJECT_VERB = re.compile(
    rf"\b(?P<subject>i|we|they|my \w+|our \w+)\s+(?:also\s+|just\s+|really\s+)?"
    rf"(?P<verb>{'|'.join(PAST)})\b(?!\s+(?:been|got)\b)",
    re.IGNORECASE,
)
_FIXED = [
    (re.compile(r"\bI am agree\b", re.IGNORECASE), "I agree"),
    (re.compile(r"\bI'm agree\b", re.IGNORECASE), "I agree"),
    (re.compile(r"\bmore (better|worse|bigger|easier|harder)\b", re.IGNORECASE), r"\1"),
    (re.compile(r"\bdiscuss(ed)? about\b", re.IGNORECASE), r"discuss\1"),
    (re.compile(r"\b(he|she|it) don't\b", re.IGNORECASE), r"\1 doesn't"),
]
_SENTENCE = re.compile(r"[^.!?\n]+")


@dataclass(frozen=True)
class Correction:
    """One grammar or spelling hint: what was written, what to write, where."""

    kind: str  # "grammar" or "spelling"
    original: str
    corrected: str
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "original": self.original,
            "corrected": self.corrected,
            "start": self.start,
            "end": self.end,
        }


def _keep_case(original: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if original[:1].isupper() else replacement


def grammar_hints(text: str) -> list[Correction]:
    """The few grammar mistakes that can be spotted reliably without a parser."""
    found: list[Correction] = []
    for match in _HAVE_PAST.finditer(text):
        verb = match.group("verb")
        if match.group("have") == "'s":
            continue  # "he's went" is rare; "it's ran" is ambiguous with "it is"
        fixed = match.group()[: match.start("verb") - match.start()] + PARTICIPLES[verb.lower()]
        found.append(Correction("grammar", match.group(), fixed, match.start(), match.end()))
    tense: list[Correction] = []
    for sentence in _SENTENCE.finditer(text):
        if not _PAST_TIME.search(sentence.group()) or _PRESENT_TIME.search(sentence.group()):
            continue
        for match in _SUBJECT_VERB.finditer(sentence.group()):
            verb = match.group("verb")
            if verb.lower() == "have" and sentence.group()[match.end() :].startswith(" to "):
                continue  # "Last week I have to..." is a different mistake; leave it
            past = PAST[verb.lower()]
            start = sentence.start() + match.start()
            original = match.group()
            fixed = original[: match.start("verb") - match.start()] + _keep_case(verb, past)
            tense.append(Correction("grammar", original, fixed, start, start + len(original)))
    # "I have saw" is one mistake: the participle fix wins over a past-tense one on "I have".
    participle_spans = [(c.start, c.end) for c in found]
    found += [
        c
        for c in tense
        if not any(c.start < end and start < c.end for start, end in participle_spans)
    ]
    for match in _OVERREGULAR.finditer(text):
        verb = match.group("verb")
        start, end = match.start("verb"), match.end("verb")
        if not any(c.start < end and start < c.end for c in found):
            fixed = _keep_case(verb, OVERREGULAR[verb.lower()])
            found.append(Correction("grammar", verb, fixed, start, end))
    for pattern, replacement in _FIXED:
        for match in pattern.finditer(text):
            fixed = _keep_case(match.group(), match.expand(replacement))
            found.append(Correction("grammar", match.group(), fixed, match.start(), match.end()))
    return sorted(found, key=lambda c: c.start)


@functools.cache
def _checker() -> Any:
    """pyspellchecker's English list, loaded once (the first call takes ~0.5 s)."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en")


def spelling_mistakes(text: str, *, limit: int = 5) -> list[Correction]:
    """Misspelled words with the likeliest correction (names and capitalised words skipped)."""
    checker = _checker()
    found: list[Correction] = []
    for match in WORD.finditer(text):
        word = match.group()
        if not word.isalpha() or word[:1].isupper() or len(word) < 3:
            continue
        if not checker.unknown([word]) or word.lower() in OVERREGULAR:
            continue  # known, or a grammar hint already (an irregular verb given -ed)
        corrected = checker.correction(word)
        if corrected and corrected != word:
            found.append(Correction("spelling", word, corrected, match.start(), match.end()))
            if len(found) >= limit:
                break
    return found


def vocabulary_variety(tokens: list[str]) -> float:
    """Distinct words over words, on windows of 50 words (so long answers are not punished)."""
    lowered = [t.lower() for t in tokens if t[:1].isalpha()]
    if not lowered:
        return 0.0
    window = 50
    if len(lowered) <= window:
        return round(len(set(lowered)) / len(lowered), 3)
    ratios = [
        len(set(lowered[i : i + window])) / window
        for i in range(0, len(lowered) - window + 1, window // 2)
    ]
    return round(sum(ratios) / len(ratios), 3)
