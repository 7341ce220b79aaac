"""How well the answer analyser agrees with hand-labelled answers, next to the baseline.

`python -m chat.coach.evaluation --out var/coaching.md` (what `make coaching-report` runs)
writes the report; `make docs` copies it to docs/coaching.md. Pure Python, no Django.

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

import argparse
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


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}"


def _table(name: str, rows: list[str], columns: list[tuple[str, Scores]], group: str) -> str:
    head = f"| {name} | " + " | ".join(f"{title} P | {title} R" for title, _ in columns) + " |"
    lines = [head, "|---" * (1 + 2 * len(columns)) + "|"]
    for row in rows:
        cells = []
        for _, scores in columns:
            counts = scores[group].get(row, Counts())
            cells += [_pct(counts.precision), _pct(counts.recall)]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


INTRO = """\
# Coaching analysis: how the offline coach reads an answer

This page is generated by `make coaching-report` (written to `var/coaching.md`) and copied
here by `make docs`. The numbers below come from the labelled answers in
`tests/data/coaching/answers.jsonl`.

## How the analyser works

`chat/coach/analysis.py` reads one answer (and its question) in a few milliseconds,
with no model and no network, and returns character spans into the answer:

- **STAR parts.** The answer is cut into sentences, then into clauses (at a comma or
  semicolon before a connective, and before "so I", "and then", "as a result"...). Each
  clause is scored against cue phrases: a setting in time or place ("at my last job",
  "two years ago", "there was") for the situation; an obligation or goal ("I had to",
  "my task was") for the task; "I" or "we" with a past-tense verb for an action; an
  outcome ("as a result", "reduced", "was happy", a number) for the result. A small bonus
  for position (settings come first, outcomes last) breaks ties. A clause without cues
  keeps the part of the clause before it in the same sentence, so a part split across a
  comma stays whole, and one sentence can hold both a situation and a task. A story with
  actions that ends on a sentence without cues ends on its outcome ("No patient missed
  their treatment."). "They" is not the learner, so "they stayed with us" is no action.
- **Fillers.** um, uh, er, basically and actually always count. like, you know, I mean,
  sort of and kind of count only when they carry no meaning: "I like football",
  "something like a reading club", "do you know the answer" and "what kind of bug" are
  not fillers; ", like," or "it was like really hard" are.
- **Missing.** `situation`, `task`, `action`, `result` when no clause shows the part;
  `personal_contribution` when the answer says "we" and no action is the speaker's own;
  `measurable_result` when the result holds no number (digits, spelled-out numbers like
  "a team of four", "twice as fast", "half the cost", a percentage, money or "a week");
  `specific_example` when the answer describes what one would or always does and no one
  occasion (no time anchor such as "last year", fewer than two past-tense clauses).
  Questions that are not behavioural ("Why do you want this role?") and general-purpose
  coaches get no STAR flags.
- **Conversation and medical coaches** get no STAR feedback: small talk gets fillers,
  vocabulary variety (distinct words over words, on 50-word windows), spelling (the
  pyspellchecker English list) and a few grammar hints that are nearly always right
  ("I have saw" → "I have seen", "Yesterday I go" → "Yesterday I went", "I am agree");
  a symptom history gets which of onset, duration, severity, location and associated
  symptoms it mentions.
- **Highlights** for the page are one flat list of (kind, start, end) that never overlap:
  fillers win over hedges, hedges over "we" sentences (shown only when
  `personal_contribution` is flagged), and those over STAR parts, which are cut around
  them.

## Using it

- `analyse(answer, question=None, *, category="interview", duration_seconds=None)` in
  `chat/coach/analysis.py` returns an `Analysis`; `.to_dict()` is JSON-ready and
  `.highlights()` gives the marks for the page.
- `offline_feedback(answer, question, category, *, variant=0)` in `chat/coach/coaching.py`
  is what the offline coach says about an answer (the caller appends the next question);
  `follow_up(answer)` is a small-talk follow-up question and
  `unanswered_questions(bank, answers)` drops the medical questions already answered.
- `python manage.py coach_feedback --jsonl < answers.jsonl` analyses one JSON object per
  line (`{"question": ..., "answer": ...}`, optional `category`, `duration_seconds`) and
  writes one result per line; a bad line gets `{"error": ...}`.
- `make bench` times `analyse()` on a 300-word answer (part `analysis`).

## Limits

- Cue phrases, not understanding: an unusual way of telling a story ("The moment the
  server died, everyone looked at me.") can be missed, and a clause with cues for two
  parts gets only the stronger one.
- The labelled set is small and was written by the same person who wrote the rules, and
  the rules were tuned on it: it is a development set, and its numbers are optimistic.
  The held-out answers (`tests/data/coaching/heldout.jsonl`, written after the first
  version of the rules; later changes came from other, unlabelled answers, never from
  the held-out mistakes) are the fairer estimate: they show the task part
  and the flags that depend on it (`task`, `measurable_result`) are the weakest, because
  tasks are often implied ("Nobody had time to make one, so I offered to do it").
- English only; spelling skips capitalised words (names, places) and words under three
  letters.

## What the tables mean

P is precision (of what was found, how much was right), R is recall (of what was
labelled, how much was found), in percent; "—" means nothing was found or nothing was
labelled. STAR parts are scored by character overlap, fillers by span match, flags per
answer (see `chat/coach/evaluation.py`). "Mean F1 over STAR parts and flags" is the mean
of the F1 of the four parts and the seven flags. The **baseline** is positional: first sentence
= situation, second = task, middle sentences = action, last = result, every filler word
counted by plain match. **Weak answers** are the labelled answers marked weak (rambling,
"we" only, hypothetical, no result, many fillers): the answers that need coaching most.
"""


def report_markdown(examples: list[Example], held_out: list[Example] | None = None) -> str:
    """The whole report: explanation, headline and the tables."""
    weak = [e for e in examples if e.weak]
    columns = [
        ("analyser", evaluate(examples, run_analyser)),
        ("baseline", evaluate(examples, run_baseline)),
        ("analyser weak", evaluate(weak, run_analyser)),
        ("baseline weak", evaluate(weak, run_baseline)),
    ]
    (_, a_all), (_, b_all), (_, a_weak), (_, b_weak) = columns
    interview = sum(1 for e in examples if e.category not in ("conversation", "medical"))
    lines = [
        INTRO,
        "## Results",
        "",
        f"{len(examples)} labelled answers ({interview} interview, {len(weak)} weak).",
        "",
        "Mean F1 over STAR parts and flags: "
        f"analyser {100 * macro_f1(a_all):.0f} vs baseline {100 * macro_f1(b_all):.0f} "
        f"on all answers; **{100 * macro_f1(a_weak):.0f} vs {100 * macro_f1(b_weak):.0f} "
        "on the weak answers**. Fillers, F1 on all answers: "
        f"analyser {_pct(a_all['fillers']['all'].f1)} vs baseline "
        f"{_pct(b_all['fillers']['all'].f1)}.",
        "",
        "### STAR parts (character overlap)",
        "",
        _table("part", list(PARTS), columns, "star"),
        "",
        "### Fillers (span match)",
        "",
        _table("filler", [*FILLER_FORMS, "all"], columns, "fillers"),
        "",
        "### Missing flags (per answer)",
        "",
        _table("flag", list(MISSING_FLAGS), columns, "missing"),
        "",
    ]
    hints = evaluate_hints(examples)
    lines += [
        "### Small talk and symptom histories",
        "",
        f"{sum(e.category == 'conversation' for e in examples)} small-talk and "
        f"{sum(e.category == 'medical' for e in examples)} medical answers: too few to say "
        "more than that the hints fire where they should.",
        "",
        "| what | analyser P | analyser R |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {_pct(c.precision)} | {_pct(c.recall)} |"
        for name, c in (
            ("grammar hints (words corrected)", hints["grammar"]),
            ("spelling hints (words corrected)", hints["spelling"]),
            ("missing onset / duration / severity", hints["history_missing"]),
        )
    ]
    lines.append("")
    if held_out:
        a_held, b_held = evaluate(held_out, run_analyser), evaluate(held_out, run_baseline)
        held_columns = [("analyser", a_held), ("baseline", b_held)]
        lines += [
            f"### Held-out answers ({len(held_out)}, never used to tune the rules)",
            "",
            f"Mean F1 over STAR parts and flags: analyser {100 * macro_f1(a_held):.0f} vs "
            f"baseline {100 * macro_f1(b_held):.0f}; fillers F1 analyser "
            f"{_pct(a_held['fillers']['all'].f1)} vs baseline {_pct(b_held['fillers']['all'].f1)}.",
            "",
            _table("part", list(PARTS), held_columns, "star"),
            "",
            _table("flag", list(MISSING_FLAGS), held_columns, "missing"),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the report to --out (default var/coaching.md)."""
    parser = argparse.ArgumentParser(description="Score the answer analyser on labelled answers.")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--held-out", type=Path, default=HELD_OUT)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "coaching.md")
    args = parser.parse_args(argv)
    held_out = load_examples(args.held_out) if args.held_out.exists() else None
    text = report_markdown(load_examples(args.data), held_out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"coaching report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
