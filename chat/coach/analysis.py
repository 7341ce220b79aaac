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

import re
from dataclasses import dataclass, field

from chat.coach import fillers as filler_rules
from chat.coach import fluency, history
from chat.coach.text import Span, clauses, has_quantity, sentences, trim, words

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


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression (outside groups and classes)."""
    found, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            found.append(pattern[start:i])
            start = i + 1
        i += 1
    found.append(pattern[start:])
    return found


def _cues(*patterns: str) -> re.Pattern[str]:
    """One regex for a list of cue phrases, built to be scanned fast.

    Matched against lower-cased text (case-insensitive matching is several times slower),
    and every alternative that starts with a word boundary is put under one shared \\b, so
    positions inside words are rejected once instead of once per alternative (3x faster).
    """
    pieces = [alt for p in patterns for alt in _alternatives(p)]
    bounded = [alt[2:] for alt in pieces if alt.startswith("\\b")]
    others = [f"(?:{alt})" for alt in pieces if not alt.startswith("\\b")]
    if bounded:
        others.append("\\b(?:" + "|".join(f"(?:{alt})" for alt in bounded) + ")")
    return re.compile("|".join(others))


def lowered(text: str) -> str:
    """The text in lower case with the same offsets (characters whose lower case is longer,
    like "İ", are kept as they are)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


_SUBJ = r"(?:i|we|my team|our team|the team|they)"
_ACTION_VERBS = (
    r"decided|started|organi[sz]ed|talked|spoke|wrote|built|created|set up|suggested|"
    r"proposed|asked|called|met|reviewed|analy[sz]ed|fixed|added|scheduled|took|went|made|"
    r"changed|used|tried|found|checked|researched|prepared|divided|split|contacted|emailed|"
    r"explained|listened|trained|automated|rewrote|refactored|designed|implemented|"
    r"introduced|arranged|booked|offered|apologi[sz]ed|focused|practi[sc]ed|studied|"
    r"stayed|learned|learnt|read|looked|traced|removed|moved|gave|showed|led|ran|planned|"
    r"sat down|broke|compared|collected|measured|tested|deployed|migrated|negotiated|"
    r"persuaded|convinced|invited|reproduced|profiled|rolled back|worked|spent|kept|"
    r"volunteered|recorded|watched|joined|opened|replaced|cleaned|simplified|mentored|"
    r"coached|interviewed|surveyed|drafted|sent|shared|presented|pushed|paired|agreed|"
    r"stepped in|took over|took charge|reached out|followed up|sorted|restarted|rebuilt"
)
SITUATION = _cues(
    r"^(?:at|in|during|when|while|back in|last|a few|one day|once|two|three|on my|"
    r"at the time|this was|it was (?:during|in|at|my|our))\b",
    r"\b(?:at|in) my (?:last|previous|first|old|current|second|final|summer)\b",
    r"\b(?:last|this past|that) (?:year|month|summer|winter|spring|autumn|semester|term|week)\b",
    r"\b(?:years?|months?|weeks?) ago\b|\bin (?:19|20)\d\d\b",
    r"\bthere (?:was|were)\b|\bwe had (?:a|an|one|two|three|no|this|these|some|the)\b",
    r"\b(?:i|we) (?:was|were) (?:a|an|the|in|on|part|working|leading|one|at|doing|the only)\b",
    r"\bi worked (?:as|at|for|in)\b|\bworking (?:as|at|on|for)\b",
    r"\b(?:our|the|my) (?:team|company|project|client|customer|shop|store|app|website|"
    r"school|class|group|department|manager|boss|professor) (?:was|were|had|used|ran|"
    r"wanted|sold|needed)\b",
    r"\bat (?:university|school|college|work)\b|\binternship\b|\bpart-time\b",
    r"\b(?:once|one day)\b",
)
TASK = _cues(
    r"\b(?:my|our) (?:main |first |only |big |real )?(?:task|job|role|responsibility|goal|aim|"
    r"mission|assignment)(?: \w+){0,4}? (?:was|were|is)\b",
    r"\bi was (?:responsible|asked|supposed|in charge|tasked|expected|given|chosen|told)\b",
    rf"\b{_SUBJ} (?:had|needed|wanted|have|need) to\b",
    r"\bthe (?:goal|task|challenge|problem|issue|aim|deadline|plan) was\b",
    r"\bit was (?:my|up to me|on me)\b",
    r"\b(?:asked|told) me to\b|\bmy job\b|\bmy task\b|\bmy role\b",
    r"\bhad to make sure\b|\bso that (?:i|we) could\b",
)
# The learner's own actions: "they" is usually someone else (the client, the users).
_DOER = r"(?:i|we|my team|our team|the team)"
ACTION = _cues(
    rf"\b{_DOER} (?:\w+ly |then |also |first |quickly |finally )?(?:{_ACTION_VERBS})\b",
    r"^(?:so|first|then|next|after that|afterwards|and then|firstly|secondly|to do this),? "
    rf"{_DOER}\b",
    r"^(?:first|then|next|after that|afterwards|and then),? ",
    rf"\b{_DOER} (?:\w+ly )?(?!was\b|were\b|had\b|needed\b|wanted\b)\w+ed\b",
)
RESULT = _cues(
    r"\b(?:as a result|in the end|eventually|the (?:result|outcome)|resulted in|"
    r"which meant|this meant|that meant|this led to|led to|thanks to this|because of this|"
    r"since then|from then on|at the end)\b",
    r"^(?:finally|in the end|so in the end|and so|now|by the end)\b",
    r"^after (?:a|an|one|two|three|four|five|six|\d+|a few|several) (?:days?|weeks?|months?|"
    r"years?|terms?)\b",
    r"\b(?:became|got|was|were|is|are) (?:much |a lot |far |even )?(?:faster|better|easier|"
    r"cheaper|quicker|shorter|smaller|stable|more \w+|less \w+)\b",
    r"\b(?:times|twice|much|far) (?:faster|quicker|cheaper|better|smaller|more|fewer)\b",
    r"\b(?:higher|better|top|best|lower) (?:score|grade|mark|rating|result|rank)\b",
    r"\b(?:complaints|crashes|errors|bugs|sales|costs?|tickets|queue|migration|project|"
    r"problem|issue) (?:stopped|finished|ended|disappeared|went|moved|fell|dropped|rose|"
    r"grew|was solved|was fixed)\b",
    r"\b(?:reduced|increased|improved|saved|cut|doubled|halved|grew|dropped|fell|rose|"
    r"raised|lowered|shortened|boosted|sped up|went down|went up)\b",
    r"\bon time\b|\bahead of (?:schedule|time)\b|\bthe deadline\b",
    r"\b(?:was|were) (?:happy|pleased|impressed|satisfied|delighted|solved|fixed|fine|"
    r"successful|a success|back|stable|finished|done)\b",
    r"\bgot (?:promoted|an award|the job|positive|good|great|a good|an a|full|top)\b",
    r"\b(?:we|i|they|it) (?:delivered|launched|shipped|won|passed|finished|completed|hit|"
    r"met the deadline|never|stopped|signed|renewed|became|worked again)\b",
    r"\b(?:learned|learnt) (?:that|a lot|to|how)\b|\bthanked (?:me|us)\b",
    r"\bnow (?:i|we|the|it|they|everyone)\b",
    r"\b(?:she|he|they|the (?:customer|client|user|manager|teacher|team)) (?:thanked|came back|"
    r"said (?:it|that|thanks)|left a|was (?:happy|pleased|calm)|gave (?:us|me) a|signed)\b",
    r"\b(?:good|positive|great|five-star) (?:review|feedback|rating|grade|score)\b",
    r"\b(?:no|zero|fewer|less|more|faster|slower) (?:complaints|bugs|errors|crashes|time|"
    r"tickets|customers|sales|users)\b",
)
GENERIC = _cues(
    r"\b(?:i|we|you)(?:'d| would| will|'ll| always| usually| normally| generally| often|"
    r" tend to| try to| like to| make sure| am the kind| am someone| am a person|'m a| am a|"
    r" never| can)\b",
    r"\bif (?:i|we|you|a|an|the|someone|there)\b|\bin general\b|\bgenerally\b|\busually\b",
)
ANCHOR = _cues(
    r"\b(?:last|this past|that) (?:year|month|summer|winter|spring|autumn|semester|term|week|"
    r"job|company|internship|project)\b",
    r"\b(?:years?|months?|weeks?|days?) ago\b|\bin (?:19|20)\d\d\b|\bonce\b|\bone (?:day|time)\b",
    r"\b(?:when|while) (?:i|we) (?:was|were|worked|had|studied)\b",
    r"\b(?:at|in) my (?:last|previous|first|old|second|final|summer)\b|\bthere was a time\b",
    r"\bduring my\b|\bback in\b",
)
PAST = re.compile(
    r"\b(?:i|we|my team|our team|they)\s+(?:\w+ly\s+)?(?:was|were|had|did|went|made|took|"
    r"wrote|built|spoke|found|got|gave|led|ran|met|sent|kept|spent|\w+ed)\b"
)
I_DOER = re.compile(
    r"\b(?:i|i've|i'd|myself)\b(?!\s+(?:think|guess|mean|believe|suppose|hope|feel)\b)"
)
WE = re.compile(r"\b(?:we|we've|we'd|our team|the team)\b")
NON_BEHAVIOURAL = re.compile(
    r"^\s*(?:why|what would you like|how would you|explain|what happens|what is|what are|"
    r"where do you see|what do you know|do you have any questions)\b",
    re.IGNORECASE,
)
# "Since then I always set reminders" is a result, not a habit.
_AFTERWARDS = re.compile(r"\b(?:since then|from then on|now|ever since)\b")
_CONTINUES = re.compile(r"^(?:and|then|also|plus)\s+(?:\w+ly\s+)?\w+(?:ed|t)\b")


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
        if GENERIC.search(clause) and not PAST.search(clause) and not _AFTERWARDS.search(clause):
            labels.append(None)
            generic.add(i)
            continue
        last = units[i][0] == units[-1][0]
        scores = _score(clause, i / max(1, len(units) - 1), last=last)
        best = max(PARTS, key=lambda p: scores[p])
        if scores[best] >= 1.5:
            labels.append(best)
        elif labels and labels[-1] == "action" and _CONTINUES.search(clause):
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
