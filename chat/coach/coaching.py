"""What the offline coach says after an answer, built from the answer's analysis.

Three beats: acknowledge something concrete (a short quote from the answer), give the single
most useful improvement, and (the caller appends it) the next question. Per persona
category: interview → STAR and results; conversation → fluency, at most one gentle
correction and a follow-up about what the learner said; medical → ask for what the history
still lacks instead of repeating a question already answered. `variant` picks another
wording deterministically (Regenerate). Plain text; the only Markdown is a short bold label.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence

from django.utils import translation
from django.utils.translation import gettext

from chat.coach.analysis import PARTS, Analysis, analyse
from chat.coach.history import ELEMENTS
from chat.coach.text import Span, sentences, words

QUOTE_WORDS = 8
# The coach's questions are the practice itself: English whatever the interface language;
# the advice about an answer follows the interface language.
COACH_LANGUAGE = "en"
_DANGLING = {
    "a", "an", "the", "of", "and", "to", "in", "on", "at", "from", "by", "with", "as", "for",
    "under", "over", "about", "my", "our", "your", "very", "so", "but", "or", "that", "than",
    "his", "her", "their", "its", "is", "was", "were", "are", "i", "we",
}  # fmt: skip
_TOPIC = re.compile(
    r"\b(?:a|an|the|this|that)\s+(?:\w+\s+){0,2}?(?P<noun>movie|film|book|song|show|series|"
    r"game|match|restaurant|cafe|café|trip|concert|museum|beach|festival|party|class|course|"
    r"hobby|dog|cat|dish|recipe|city|town|village|island|mountain|market|team|club)\b",
    re.IGNORECASE,
)
_QUOTE_TRIM = re.compile(
    r"^(?:(?:and|but|so|then|as a result|in the end|finally|eventually|um|uh|er|well|"
    r"basically|actually|after that)\b[\s,]*)+|[\s,;:.!?]+$",
    re.IGNORECASE,
)
_PLACE = re.compile(
    r"\b(?:to|at|in|from|near|around|into)\s+(?P<phrase>the\s+(?:\w+\s+)?(?!same\b)\w+)",
    re.IGNORECASE,
)
_MY = re.compile(
    r"\bmy\s+(?P<thing>(?:best\s+|old\s+|new\s+|little\s+|younger\s+|older\s+)?"
    r"(?!own\b|way\b|life\b|time\b|opinion\b)[a-z]+)\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<=[a-z,] )(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)?)")
_NOT_NAMES = {"I", "I'm", "I've", "English", "Korean", "Monday", "Friday", "Sunday", "Saturday"}
# Bank questions that a symptom history can already have answered.
_QUESTION_ELEMENT = {
    "onset": re.compile(r"\bwhen did\b|\bstart(?:ed)?\b|\bbegin\b|\bbegan\b", re.IGNORECASE),
    "duration": re.compile(r"\bhow long\b", re.IGNORECASE),
    "severity": re.compile(
        r"\bscale\b|\bhow bad\b|\bsharp, dull\b|\bthrobbing\b|\bhow severe\b", re.IGNORECASE
    ),
}


def _pick(options: Sequence[str], answer: str, variant: int) -> str:
    """The same answer and variant always give the same wording; another variant another."""
    return options[(zlib.crc32(answer.encode()) + variant) % len(options)]


def quote(analysis: Analysis, spans: Sequence[Span]) -> str:
    """A short phrase from the answer (three to eight words) from the first usable span.

    The phrase is the first comma-separated piece of the span, cut to eight words and not
    left hanging on a little word ("under half a" becomes "under half").
    """
    for start, end in spans:
        for piece in re.split(r"[,;:]\s*", analysis.answer[start:end]):
            tokens = _QUOTE_TRIM.sub("", piece.strip()).split()[:QUOTE_WORDS]
            while tokens and tokens[-1].lower().strip(".,!?") in _DANGLING:
                tokens.pop()
            if len(words(" ".join(tokens))) >= 3:
                return _QUOTE_TRIM.sub("", " ".join(tokens))
    return ""


def _sentences_of(analysis: Analysis) -> list[Span]:
    return sentences(analysis.answer)


def _acknowledge(analysis: Analysis, variant: int) -> str:
    spans = [*analysis.star.get("result", []), *analysis.star.get("action", [])]
    phrase = quote(analysis, spans) or quote(analysis, _sentences_of(analysis))
    if not phrase:
        return gettext("Thank you for your answer.")
    if "specific_example" in analysis.missing or not any(analysis.star.values()):
        # Nothing concrete to praise yet: name what was said without calling it concrete.
        options = [
            gettext("You mentioned “%(quote)s”."),
            gettext("Thanks — I hear “%(quote)s”."),
        ]
        return _pick(options, analysis.answer, variant) % {"quote": phrase}
    options = [
        gettext("You said “%(quote)s” — that is the kind of detail people remember."),
        gettext("I liked “%(quote)s”: it makes your answer concrete."),
        gettext("Thanks — “%(quote)s” gives me a clear picture."),
    ]
    return _pick(options, analysis.answer, variant) % {"quote": phrase}


def _filler_tip(analysis: Analysis, variant: int) -> str | None:
    count = len(analysis.fillers)
    if count < 3 and count * 100 < 4 * max(1, analysis.words):
        return None
    forms = sorted(
        {f.form for f in analysis.fillers},
        key=lambda f: -sum(1 for x in analysis.fillers if x.form == f),
    )[:2]
    shown = " / ".join(f"“{f}”" for f in forms)
    options = [
        gettext("You used %(forms)s %(count)d times: a short silent pause sounds more sure."),
        gettext("Try swapping %(forms)s (%(count)d times here) for a one-second pause."),
    ]
    return _pick(options, analysis.answer, variant) % {"forms": shown, "count": count}


def _hedge_tip(analysis: Analysis, variant: int) -> str | None:
    if len(analysis.hedges) < 2:
        return None
    first = analysis.text(analysis.hedges[0])
    options = [
        gettext("Words like “%(hedge)s” make a true story sound unsure: say what happened."),
        gettext("Drop “%(hedge)s” when you tell what you did — you were there, so say it plainly."),
    ]
    return _pick(options, analysis.answer, variant) % {"hedge": first}


def _length_tip(analysis: Analysis) -> str | None:
    if analysis.words < 25:
        return gettext("That was short: give one concrete example with a few details.")
    if analysis.words > 300:
        return gettext("That was long: aim for about two minutes, and lead with the result.")
    return None


_INTERVIEW_TIPS: dict[str, Callable[[], list[str]]] = {
    "specific_example": lambda: [
        gettext("Tell me about one real occasion: when it was, what happened, what you did."),
        gettext("Pick one time it really happened, not what you would usually do."),
    ],
    "personal_contribution": lambda: [
        gettext("You said “we” all the way through: what did you do yourself? Start with “I…”."),
        gettext("The team matters, but the interviewer hires you: say which part was yours."),
    ],
    "action": lambda: [
        gettext("Say what you did, step by step: that is the heart of the answer."),
        gettext("Add the actions you took — two or three steps, each starting with “I”."),
    ],
    "result": lambda: [
        gettext("Finish with the result: what changed because of what you did?"),
        gettext("You stopped before the ending: how did it turn out?"),
    ],
    "measurable_result": lambda: [
        gettext("Put a number on the result — time saved, money, people, a percentage."),
        gettext("How much better was it? One number makes the result memorable."),
    ],
    "situation": lambda: [
        gettext("Start with one sentence of context: where and when this happened."),
        gettext("Set the scene first — where were you, and what was going on?"),
    ],
    "task": lambda: [
        gettext("Say what you had to achieve before you say what you did."),
        gettext("What was your goal or responsibility there? One sentence is enough."),
    ],
}
# The most useful change first: a real story, then whose it is, then what is missing from it.
_ORDER = (
    "specific_example",
    "personal_contribution",
    "action",
    "result",
    "measurable_result",
    "situation",
    "task",
)


def _interview_tip(analysis: Analysis, variant: int) -> tuple[str, str]:
    """(label, tip): the label is empty when the tip is praise rather than a change."""
    label = gettext("Next time:")
    if analysis.words < 8:
        # Too little to judge the structure: ask for more first.
        return label, gettext("That was short: give one concrete example with a few details.")
    for flag in _ORDER:
        if flag in analysis.missing:
            return label, _pick(_INTERVIEW_TIPS[flag](), analysis.answer, variant)
    for tip in (
        _filler_tip(analysis, variant),
        _hedge_tip(analysis, variant),
        _length_tip(analysis),
    ):
        if tip:
            return label, tip
    if analysis.behavioural and all(analysis.star.get(p) for p in PARTS):
        return "", _pick(
            [
                gettext("That is a complete STAR answer. Next time, open with the result."),
                gettext("Situation, task, action and result are all there — well done."),
            ],
            analysis.answer,
            variant,
        )
    return "", gettext("Clear answer. Add one concrete example to make it stick.")


def follow_up(answer: str, *, variant: int = 0) -> str:
    """A conversation follow-up about something the learner mentioned."""
    if len(words(answer)) < 4:
        return _pick(
            [
                gettext("Can you tell me a little more about that?"),
                gettext("Tell me more — what happened?"),
            ],
            answer,
            variant,
        )
    topic = _TOPIC.search(answer)
    if topic:
        options = [
            gettext("Tell me more about the %(thing)s — what did you like about it?"),
            gettext("What was the best part of the %(thing)s?"),
            gettext("Would you recommend the %(thing)s to a friend? Why?"),
        ]
        return _pick(options, answer, variant) % {"thing": topic.group("noun").lower()}
    place = _PLACE.search(answer)
    if place:
        tokens = place.group("phrase").lower().split()
        while len(tokens) > 2 and tokens[-1] in _DANGLING:
            tokens.pop()  # "the park and" → "the park"
        phrase = " ".join(tokens)
        options = [
            gettext("What do you like most about %(thing)s?"),
            gettext("How often do you go to %(thing)s?"),
            gettext("What is %(thing)s like? Describe it for me."),
        ]
        return _pick(options, answer, variant) % {"thing": phrase}
    mine = _MY.search(answer)
    if mine:
        options = [
            gettext("Tell me more about your %(thing)s."),
            gettext("What is your %(thing)s like?"),
        ]
        return _pick(options, answer, variant) % {"thing": mine.group("thing").lower()}
    name = next((m for m in _NAME.finditer(answer) if m.group("name") not in _NOT_NAMES), None)
    if name:
        options = [
            gettext("What do you know about %(thing)s?"),
            gettext("Why %(thing)s? Tell me a little more."),
        ]
        return _pick(options, answer, variant) % {"thing": name.group("name")}
    options = [
        gettext("What did you enjoy most about it?"),
        gettext("Can you tell me a little more about that?"),
    ]
    return _pick(options, answer, variant)


def _conversation_feedback(analysis: Analysis, variant: int) -> str:
    parts = []
    fixes = analysis.grammar or analysis.spelling
    # Quote a sentence without the mistake about to be corrected.
    clean = [
        s for s in _sentences_of(analysis) if not any(s[0] <= f.start < s[1] for f in fixes[:1])
    ]
    phrase = quote(analysis, clean)
    if phrase:
        options = [
            gettext("“%(quote)s” — that sounds nice."),
            gettext("Oh, “%(quote)s”! Thanks for sharing."),
            gettext("I like that: “%(quote)s”."),
        ]
        parts.append(_pick(options, analysis.answer, variant) % {"quote": phrase})
    if fixes:
        fix = fixes[0]
        parts.append(
            "**"
            + gettext("Tip:")
            + "** "
            + gettext("“%(original)s” → “%(corrected)s”.")
            % {"original": fix.original, "corrected": fix.corrected}
        )
    elif tip := _filler_tip(analysis, variant):
        parts.append("**" + gettext("Tip:") + "** " + tip)
    with translation.override(COACH_LANGUAGE):  # the conversation itself stays English
        parts.append(follow_up(analysis.answer, variant=variant))
    return " ".join(parts)


def _history_question(element: str) -> str:
    return {
        "onset": gettext("When did it start?"),
        "duration": gettext("How long does it last — all the time, or does it come and go?"),
        "severity": gettext("On a scale from one to ten, how bad is it?"),
        "location": gettext("Where exactly do you feel it?"),
    }[element]


def _medical_feedback(analysis: Analysis, variant: int) -> str:
    spans = [s for key in ("severity", "location", "onset") for s in analysis.history[key]]
    parts = []
    phrase = quote(analysis, _sentences_of(analysis)) if spans or analysis.words > 3 else ""
    if phrase:
        options = [
            gettext("Thank you — “%(quote)s” is clear."),
            gettext("I understand: “%(quote)s”."),
        ]
        parts.append(_pick(options, analysis.answer, variant) % {"quote": phrase})
    if analysis.history_missing:
        with translation.override(COACH_LANGUAGE):
            parts.append(_history_question(analysis.history_missing[0]))
    elif not analysis.history.get("location"):
        with translation.override(COACH_LANGUAGE):
            parts.append(_history_question("location"))
    else:
        parts.append(
            gettext(
                "You said when it started, how long it lasts and how bad it is: "
                "that is a clear history."
            )
        )
    return " ".join(parts)


def offline_feedback(
    answer: str,
    question: str | None,
    category: str,
    *,
    variant: int = 0,
    analysis: Analysis | None = None,
) -> str:
    """The coach's feedback on one answer (the caller appends the next question)."""
    found = analysis or analyse(answer, question, category=category)
    if category == "conversation":
        return _conversation_feedback(found, variant)
    if category == "medical":
        return _medical_feedback(found, variant)
    label, tip = _interview_tip(found, variant)
    if label:
        return f"{_acknowledge(found, variant)} **{label}** {tip}"
    return f"{_acknowledge(found, variant)} {tip}"


def answered_elements(answers: Sequence[str]) -> set[str]:
    """Which parts of a symptom history (onset, duration, ...) the learner has given."""
    joined = "\n".join(answers)
    return {name for name, pattern in ELEMENTS.items() if pattern.search(joined)}


def unanswered_questions(questions: Sequence[str], answers: Sequence[str]) -> list[str]:
    """The bank questions not already answered by what the learner said (medical)."""
    given = answered_elements(answers)
    return [
        q
        for q in questions
        if not any(e in given and p.search(q) for e, p in _QUESTION_ELEMENT.items())
    ]
