"""How well the answer analyser agrees with hand-labelled answers, next to the baseline.

The report itself (docs/coaching.md) is written by chat/coach/evaluation_report.py.
Pure Python, no Django.

Scoring:
- STAR parts: character overlap. For each part, the letters and digits inside predicted
  spans are compared with those inside the labelled spans; true positives are characters
  in both. Summed over answers (micro-averaged), so a clause boundary one word off costs
  a word, not the whole part.
- Fillers: span match. A found filler is right when it overlaps a labelled filler of the
  same form; each labelled filler can be matched once.
- Missing flags: per answer, per flag (is the flag raised when the label says so).
STAR and flags are scored on interview answers only (small talk and symptom histories get
no STAR feedback); fillers on every answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chat.coach.analysis import MISSING_FLAGS, PARTS, Analysis, analyse
from chat.coach.baseline import baseline_analyse
from chat.coach.fillers import Filler, canonical
from chat.coach.text import Span

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "coaching" / "answers.jsonl"
# Written after the first version of the rules and never used to tune them.
HELD_OUT = ROOT / "tests" / "data" / "coaching" / "heldout.jsonl"
FILLER_FORMS = (
    "um", "uh", "er", "like", "you know", "basically", "actually", "i mean", "sort of", "kind of",
)  # fmt: skip
_BRACKETED = re.compile(r"\[([^\]]+)\]")


@dataclass
class Example:
    """One labelled answer, labels converted to offsets."""

    id: str
    question: str | None
    answer: str
    category: str
    weak: bool
    star: dict[str, list[Span]]
    fillers: list[Filler]
    missing: list[str]
    raw: dict[str, object] = field(default_factory=dict)


def _find(answer: str, quoted: str, after: int, where: str) -> int:
    at = answer.find(quoted, after)
    if at < 0:
        at = answer.find(quoted)
    if at < 0:
        raise ValueError(f"{where}: {quoted!r} is not in the answer")
    return at


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return [str(v) for v in value]


def parse_example(data: dict[str, object]) -> Example:
    """One labelled line: STAR parts as quoted substrings, fillers as "context [filler]"."""
    answer = str(data["answer"])
    ident = str(data["id"])
    star: dict[str, list[Span]] = {}
    labels = data.get("star") or {}
    if not isinstance(labels, dict):
        raise ValueError(f"{ident}: star must be an object of part -> quoted strings")
    for part in PARTS:
        spans = []
        for quoted in _strings(labels.get(part)):
            at = _find(answer, quoted, 0, f"{ident} {part}")
            spans.append((at, at + len(quoted)))
        star[part] = spans
    fillers = []
    cursor = 0
    for context in _strings(data.get("fillers")):
        match = _BRACKETED.search(context)
        if match is None:
            raise ValueError(f"{ident}: filler label {context!r} has no [brackets]")
        plain = context.replace("[", "").replace("]", "")
        at = _find(answer, plain, cursor, f"{ident} filler") + match.start()
        fillers.append(Filler(canonical(match.group(1)), at, at + len(match.group(1))))
        cursor = at + 1
    missing = _strings(data.get("missing"))
    unknown = set(missing) - set(MISSING_FLAGS)
    if unknown:
        raise ValueError(f"{ident}: unknown flags {sorted(unknown)}")
    question = data.get("question")
    return Example(
        id=ident,
        question=None if question is None else str(question),
        answer=answer,
        category=str(data.get("category", "interview")),
        weak=bool(data.get("weak", False)),
        star=star,
        fillers=fillers,
        missing=missing,
        raw=data,
    )


def load_examples(path: Path = DATA) -> list[Example]:
    """Every labelled answer in a JSON-lines file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [parse_example(json.loads(line)) for line in lines if line.strip()]


@dataclass
class Counts:
    """True positives, false positives, false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0


Scores = dict[str, dict[str, Counts]]
Analyser = Callable[[Example], Analysis]


def _chars(text: str, spans: Iterable[Span]) -> set[int]:
    return {i for a, b in spans for i in range(a, b) if text[i].isalnum()}


def evaluate(examples: list[Example], analyser: Analyser) -> Scores:
    """Counts per STAR part, per filler form (and "all"), per missing flag."""
    scores: Scores = {
        "star": {p: Counts() for p in PARTS},
        "fillers": {f: Counts() for f in (*FILLER_FORMS, "all")},
        "missing": {m: Counts() for m in MISSING_FLAGS},
    }
    for example in examples:
        found = analyser(example)
        interview = example.category not in ("conversation", "medical")
        if interview:
            for part in PARTS:
                gold = _chars(example.answer, example.star[part])
                pred = _chars(example.answer, found.star.get(part, []))
                counts = scores["star"][part]
                counts.tp += len(gold & pred)
                counts.fp += len(pred - gold)
                counts.fn += len(gold - pred)
            for flag in MISSING_FLAGS:
                gold_flag, pred_flag = flag in example.missing, flag in found.missing
                counts = scores["missing"][flag]
                counts.tp += gold_flag and pred_flag
                counts.fp += pred_flag and not gold_flag
                counts.fn += gold_flag and not pred_flag
        unmatched = list(example.fillers)
        for filler in found.fillers:
            hit = next(
                (
                    g
                    for g in unmatched
                    if g.form == filler.form and g.start < filler.end and filler.start < g.end
                ),
                None,
            )
            for key in (filler.form, "all"):
                counts = scores["fillers"].setdefault(key, Counts())
                if hit:
                    counts.tp += 1
                else:
                    counts.fp += 1
            if hit:
                unmatched.remove(hit)
        for missed in unmatched:
            for key in (missed.form, "all"):
                scores["fillers"].setdefault(key, Counts()).fn += 1
    return scores


def evaluate_hints(examples: list[Example]) -> dict[str, Counts]:
    """Grammar and spelling hints (by the words corrected) on small-talk answers, and the
    missing parts of a symptom history, against their labels."""
    scores = {"grammar": Counts(), "spelling": Counts(), "history_missing": Counts()}
    for example in examples:
        found = run_analyser(example)
        pairs: list[tuple[str, list[str], list[str]]] = []
        if example.category == "conversation":
            pairs.append(
                (
                    "grammar",
                    _strings(example.raw.get("grammar")),
                    [c.original for c in found.grammar],
                )
            )
            pairs.append(
                (
                    "spelling",
                    _strings(example.raw.get("spelling")),
                    [c.original for c in found.spelling],
                )
            )
        if example.category == "medical":
            pairs.append(
                (
                    "history_missing",
                    _strings(example.raw.get("history_missing")),
                    found.history_missing,
                )
            )
        for key, gold, predicted in pairs:
            counts = scores[key]
            counts.tp += len(set(gold) & set(predicted))
            counts.fp += len(set(predicted) - set(gold))
            counts.fn += len(set(gold) - set(predicted))
    return scores


def run_analyser(example: Example) -> Analysis:
    """The analyser on one labelled answer."""
    return analyse(example.answer, example.question, category=example.category)


def run_baseline(example: Example) -> Analysis:
    """The positional baseline on one labelled answer."""
    return baseline_analyse(example.answer, example.question, category=example.category)


def macro_f1(scores: Scores, groups: Iterable[str] = ("star", "missing")) -> float:
    """Mean F1 over STAR parts and flags that occur (an undefined F1 counts as 0)."""
    values = [c.f1 or 0.0 for g in groups for c in scores[g].values() if c.tp + c.fn + c.fp > 0]
    return sum(values) / len(values) if values else 0.0
