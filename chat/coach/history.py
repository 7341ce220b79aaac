"""What a learner's description of symptoms covers (medical practice): onset, duration, ..."""

from __future__ import annotations

import re

from chat.coach.text import NUMBER_WORDS, Span

_N = rf"(?:\d+|a|an|one|a few|a couple of|several|{NUMBER_WORDS})"
_UNIT = r"(?:minutes?|hours?|days?|weeks?|months?|years?|nights?)"
ELEMENTS: dict[str, re.Pattern[str]] = {
    "onset": re.compile(
        rf"\b(?:started|starts|began|begun|begins|came on|since|{_N} {_UNIT} ago|ago|"
        r"yesterday|this morning|last night|last week|on (?:monday|tuesday|wednesday|thursday|"
        r"friday|saturday|sunday)|suddenly|woke up with)\b",
        re.IGNORECASE,
    ),
    "duration": re.compile(
        rf"\b(?:for (?:about |almost |nearly |over |more than )?{_N} {_UNIT}|for (?:a while|"
        rf"ages|long)|all (?:day|night|week)|lasts?|lasted|lasting|{_N} {_UNIT} (?:now|long)|"
        r"comes and goes|constant(?:ly)?|on and off|every (?:day|night|morning))\b",
        re.IGNORECASE,
    ),
    "severity": re.compile(
        rf"\b(?:(?:\d+|{NUMBER_WORDS}) (?:out of|on a scale of|/) ?(?:10|ten)|\d+/10|scale|"
        r"mild|moderate|severe|terrible|unbearable|awful|really bad|very bad|so bad|"
        r"a little|a bit|slight(?:ly)?|worst|sharp|dull|throbbing|burning|stabbing|"
        r"can't sleep|cannot sleep|can't walk|can't work)\b",
        re.IGNORECASE,
    ),
    "location": re.compile(
        r"\b(?:head(?:ache)?|chest|stomach(?:ache)?|toothache|backache|earache|belly|back|"
        r"throat|neck|shoulders?|arms?|legs?|knees?|"
        r"ankles?|feet|foot|hands?|wrists?|eyes?|ears?|teeth|tooth|side|left|right|lower|"
        r"upper|abdomen|skin)\b",
        re.IGNORECASE,
    ),
    "associated": re.compile(
        r"\b(?:also|as well|fever|temperature|nause(?:a|ous)|sick|vomit(?:ed|ing)?|dizz(?:y|"
        r"iness)|cough(?:ing)?|rash|tired|short of breath|sweat(?:ing|y)?|chills|"
        r"diarrh(?:o)?ea|runny nose|sneez(?:e|ing))\b",
        re.IGNORECASE,
    ),
}


def history_elements(text: str) -> dict[str, list[Span]]:
    """For each element of a symptom history, the spans that mention it (may be empty)."""
    return {
        name: [(m.start(), m.end()) for m in pattern.finditer(text)]
        for name, pattern in ELEMENTS.items()
    }
