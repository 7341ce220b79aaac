"""The answer analyser: STAR parts, fillers, hedges and what an answer is missing.

`analyse(answer, question)` is pure Python (no Django, no network, no model): it runs in a
few milliseconds on every answer, so the offline coach, the practice feedback card and
live classes can all use it. Every span is a half-open ``(start, end)`` pair of character
offsets into the answer.

How STAR parts are found: the answer is cut into sentences, then into clauses (at a comma
or semicolon before a connective, and before "so I", "and then", "as a result", ...).
Each clause is scored against cue phrases for each part ("at my last job" → situation,
"I had to" → task, "I + past verb" → action, "as a result", "reduced", a number →
result) with a small bonus for where it sits in the answer; the best-scoring part wins
when it clears a threshold. A clause without cues that continues an action ("and tested
it") stays an action. Clauses that say what one *would* or *always* does are not actions
on a real occasion: they feed the `specific_example` flag instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.coach import fillers as filler_rules
from chat.coach import fluency, history
from chat.coach.cues import (
    ACTION,
    AFTERWARDS,
    ANCHOR,
    CONTINUES,
    GENERIC,
    I_DOER,
    NON_BEHAVIOURAL,
    PAST,
    RESULT,
    SITUATION,
    TASK,
    WE,
)
from chat.coach.text import Span, clauses, has_quantity, lowered, sentences, trim, words

PARTS = ("situation", "task", "action", "result")
MISSING_FLAGS = (
    "situation",
    "task",
    "action",
    "result",
    "personal_contribution",
    "measurable_result",
    "specific_example",
)
HISTORY_CORE = ("onset", "duration", "severity")
HIGHLIGHT_KINDS = ("filler", "hedge", "we", "situation", "task", "action", "result")


@dataclass
class Analysis:
    """What the analyser found in one answer (spans are offsets into `answer`)."""

    answer: str
    category: str
    words: int
    star: dict[str, list[Span]]
    fillers: list[filler_rules.Filler]
    hedges: list[Span]
    we: list[Span]
    missing: list[str]
    behavioural: bool = True
    duration_seconds: float | None = None
    words_per_minute: float | None = None
    vocabulary_variety: float = 0.0
    spelling: list[fluency.Correction] = field(default_factory=list)
    grammar: list[fluency.Correction] = field(default_factory=list)
    history: dict[str, list[Span]] = field(default_factory=dict)
    history_missing: list[str] = field(default_factory=list)

    def text(self, span: Span) -> str:
        """The answer's text for one span."""
        return self.answer[span[0] : span[1]]

    def highlights(self) -> list[tuple[str, int, int]]:
        """Non-overlapping (kind, start, end) marks, sorted by start: see resolve_overlaps."""
        marks: list[tuple[str, int, int]] = [("filler", f.start, f.end) for f in self.fillers]
        marks += [("hedge", a, b) for a, b in self.hedges]
        if "personal_contribution" in self.missing:
            marks += [("we", a, b) for a, b in self.we]
        for part in PARTS:
            marks += [(part, a, b) for a, b in self.star.get(part, [])]
        return resolve_overlaps(self.answer, marks)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (spans as [start, end] lists)."""
        return {
            "category": self.category,
            "star": {p: [list(s) for s in self.star.get(p, [])] for p in PARTS},
            "fillers": [f.to_dict() for f in self.fillers],
            "missing": list(self.missing),
            "hedges": [list(s) for s in self.hedges],
            "we": [list(s) for s in self.we],
            "words": self.words,
            "behavioural": self.behavioural,
            "duration_seconds": self.duration_seconds,
            "words_per_minute": self.words_per_minute,
            "vocabulary_variety": self.vocabulary_variety,
            "spelling": [c.to_dict() for c in self.spelling],
            "grammar": [c.to_dict() for c in self.grammar],
            "history": {k: [list(s) for s in v] for k, v in self.history.items()},
            "history_missing": list(self.history_missing),
            "highlights": [list(h) for h in self.highlights()],
        }


def resolve_overlaps(text: str, marks: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Flatten marks so none overlap: earlier kinds in HIGHLIGHT_KINDS win.

    A filler or hedge inside an action clause keeps its own mark and the action mark is cut
    around it (two pieces), so the page can wrap each piece in one `<mark>` without nesting.
    Pieces are trimmed of spaces and commas; pieces with no letter or digit are dropped.
    """
    rank = {kind: i for i, kind in enumerate(HIGHLIGHT_KINDS)}
    taken: list[Span] = []
    out: list[tuple[str, int, int]] = []
    for kind, start, end in sorted(marks, key=lambda m: (rank[m[0]], m[1])):
        pieces = [(start, end)]
        for a, b in taken:
            pieces = [p for s, e in pieces for p in ((s, min(e, a)), (max(s, b), e)) if p[0] < p[1]]
        for s, e in (trim(text, a, b, punctuation=True) for a, b in pieces):
            if any(ch.isalnum() for ch in text[s:e]):
                out.append((kind, s, e))
                taken.append((s, e))
    return sorted(out, key=lambda m: m[1])


def _score(clause: str, position: float, *, last: bool = False) -> dict[str, float]:
    scores = {
        "situation": 2.0 * len(SITUATION.findall(clause)),
        "task": 3.0 * len(TASK.findall(clause)),
        "action": 2.0 * min(2, len(ACTION.findall(clause))),
        "result": 2.5 * len(RESULT.findall(clause)),
    }
    # A number late in the story is usually the outcome, unless the clause is an action
    # ("I worked two night shifts") before the last sentence.
    late = last or (position >= 0.75 and not scores["action"])
    if has_quantity(clause) and (scores["result"] or late):
        scores["result"] += 2.0
    # Where the clause sits: stories start with the setting and end with the outcome.
    scores["situation"] += 1.0 - 2 * position if scores["situation"] else 0
    scores["result"] += position if scores["result"] else 0
    return scores


Unit = tuple[Span, Span]  # (sentence, clause)


def _units(text: str) -> list[Unit]:
    return [(s, c) for s in sentences(text) for c in clauses(text, s)]


def star_parts(text: str, units: list[Unit] | None = None) -> dict[str, list[Span]]:
    """The clause spans that show each STAR part (adjacent clauses of one part merged)."""
    text = lowered(text)
    units = _units(text) if units is None else units
    labels: list[str | None] = []
    generic: set[int] = set()
    for i, (_, (start, end)) in enumerate(units):
        clause = text[start:end]
        if GENERIC.search(clause) and not PAST.search(clause) and not AFTERWARDS.search(clause):
            labels.append(None)
            generic.add(i)
            continue
        last = units[i][0] == units[-1][0]
        scores = _score(clause, i / max(1, len(units) - 1), last=last)
        best = max(PARTS, key=lambda p: scores[p])
        if scores[best] >= 1.5:
            labels.append(best)
        elif labels and labels[-1] == "action" and CONTINUES.search(clause):
            labels.append("action")
        elif labels and labels[-1] and units[i - 1][0] == units[i][0]:
            # A part split mid-sentence: the rest of the sentence carries on with it.
            labels.append(labels[-1])
        else:
            labels.append(None)
    # A story that has actions and ends on a sentence without cues ends on its outcome:
    # "No patient missed their treatment."
    if "result" not in labels and "action" in labels and labels[-1] is None:
        last_sentence = units[-1][0]
        for i in range(len(units) - 1, -1, -1):
            if units[i][0] != last_sentence or labels[i] is not None or i in generic:
                break
            labels[i] = "result"
    star: dict[str, list[Span]] = {p: [] for p in PARTS}
    previous: tuple[str | None, Span] = (None, (0, 0))
    for (sentence, (start, end)), label in zip(units, labels, strict=True):
        if label is None:
            previous = (None, sentence)
            continue
        spans = star[label]
        if previous == (label, sentence) and spans:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        previous = (label, sentence)
    return star


def _we_sentences(text: str, spans: list[Span]) -> list[Span]:
    return [(a, b) for a, b in spans if WE.search(text[a:b]) and not I_DOER.search(text[a:b])]


def _missing(
    text: str, units: list[Unit], star: dict[str, list[Span]], behavioural: bool
) -> list[str]:
    missing = [p for p in PARTS if behavioural and not star[p]]
    actions = [text[a:b] for a, b in star["action"]]
    if behavioural and WE.search(text) and not any(I_DOER.search(a) for a in actions):
        missing.append("personal_contribution")
    results = [text[a:b] for a, b in star["result"]]
    if behavioural and results and not any(has_quantity(r) for r in results):
        missing.append("measurable_result")
    if behavioural:
        pieces = [text[a:b] for _, (a, b) in units]
        past = sum(1 for u in pieces if PAST.search(u))
        generic = sum(1 for u in pieces if GENERIC.search(u))
        if not ANCHOR.search(text) and (past < 2 or generic > past):
            missing.append("specific_example")
    return missing


def analyse(
    answer: str,
    question: str | None = None,
    *,
    category: str = "interview",
    duration_seconds: float | None = None,
) -> Analysis:
    """Analyse one answer; `category` is the persona's (interview, conversation, medical)."""
    low = lowered(answer)
    units = _units(low)
    tokens = words(answer)
    n_words = len(tokens)
    wpm = None
    if duration_seconds and duration_seconds > 0:
        wpm = round(n_words * 60.0 / duration_seconds, 1)
    result = Analysis(
        answer=answer,
        category=category,
        words=n_words,
        star={p: [] for p in PARTS},
        fillers=filler_rules.find_fillers(answer),
        hedges=filler_rules.find_hedges(answer),
        we=_we_sentences(low, sorted({sentence for sentence, _ in units})),
        missing=[],
        duration_seconds=duration_seconds,
        words_per_minute=wpm,
        vocabulary_variety=fluency.vocabulary_variety(tokens),
    )
    if category == "conversation":
        # Small talk gets fluency feedback only: never STAR advice.
        result.behavioural = False
        result.grammar = fluency.grammar_hints(answer)
        result.spelling = fluency.spelling_mistakes(answer)
        return result
    if category == "medical":
        result.behavioural = False
        result.history = history.history_elements(answer)
        result.history_missing = [k for k in HISTORY_CORE if not result.history[k]]
        return result
    # General-purpose coaches and questions like "Why this role?" get no STAR flags.
    result.behavioural = category != "general" and (
        question is None or not NON_BEHAVIOURAL.search(question)
    )
    result.star = star_parts(low, units)
    result.missing = _missing(low, units, result.star, result.behavioural)
    return result
