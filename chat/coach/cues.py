"""Cue phrases for STAR parts and the answer flags, matched against lower-cased text.

Each part's cues are one compiled regex (see `_cues` for how it is built to scan fast).
They are phrases, not understanding: add a cue when a common way of saying something is
missed, and check docs/coaching.md (`make coaching-report`) before and after.
"""

from __future__ import annotations

import re


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
AFTERWARDS = re.compile(r"\b(?:since then|from then on|now|ever since)\b")
CONTINUES = re.compile(r"^(?:and|then|also|plus)\s+(?:\w+ly\s+)?\w+(?:ed|t)\b")
