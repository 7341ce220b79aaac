"""A positional baseline for the answer analyser, kept only to measure the analyser against.

First sentence = situation, second = task, the sentences between = action, last = result;
fillers are every filler form matched as a plain word, meaning ignored.
"""

from __future__ import annotations

import re

from chat.coach.analysis import PARTS, Analysis
from chat.coach.fillers import find_hedges, plain_fillers
from chat.coach.text import Span, sentences, words

_DIGIT = re.compile(r"\d")
_I = re.compile(r"\bI\b")
_WOULD = re.compile(r"\bwould\b", re.IGNORECASE)


def positional_star(text: str) -> dict[str, list[Span]]:
    """STAR parts by sentence position alone."""
    spans = sentences(text)
    star: dict[str, list[Span]] = {p: [] for p in PARTS}
    if not spans:
        return star
    star["situation"] = spans[:1]
    if len(spans) >= 2:
        star["result"] = spans[-1:]
    if len(spans) >= 3:
        star["task"] = spans[1:2]
    if len(spans) >= 4:
        star["action"] = spans[2:-1]
    return star


def baseline_analyse(
    answer: str, question: str | None = None, *, category: str = "interview"
) -> Analysis:
    """The baseline's analysis, in the analyser's own result type."""
    interview = category not in ("conversation", "medical")
    star = positional_star(answer) if interview else {p: [] for p in PARTS}
    missing: list[str] = []
    if interview:
        missing = [p for p in PARTS if not star[p]]
        if not _I.search(answer):
            missing.append("personal_contribution")
        last = answer[star["result"][0][0] : star["result"][0][1]] if star["result"] else ""
        if star["result"] and not _DIGIT.search(last):
            missing.append("measurable_result")
        if _WOULD.search(answer):
            missing.append("specific_example")
    return Analysis(
        answer=answer,
        category=category,
        words=len(words(answer)),
        star=star,
        fillers=plain_fillers(answer),
        hedges=find_hedges(answer),
        we=[],
        missing=missing,
    )
