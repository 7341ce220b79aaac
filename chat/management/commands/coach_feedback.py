"""Analyse answers from stdin: STAR spans, fillers, missing flags, hedges and word counts.

python manage.py coach_feedback --jsonl < answers.jsonl > analysis.jsonl
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandParser

from chat.coach.analysis import PARTS, Analysis, analyse

CATEGORIES = ("interview", "conversation", "medical", "general")


def compact(analysis: Analysis) -> dict[str, object]:
    """The command's one-line result: star, fillers, missing, hedges, words."""
    return {
        "star": {p: [list(s) for s in analysis.star.get(p, [])] for p in PARTS},
        "fillers": [f.to_dict() for f in analysis.fillers],
        "missing": list(analysis.missing),
        "hedges": [list(s) for s in analysis.hedges],
        "words": analysis.words,
    }


def analyse_line(line: str, *, full: bool = False) -> dict[str, object]:
    """One input line to one output object; a bad line gives {"error": ...}, never raises."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"not JSON: {exc.msg} (column {exc.colno})"}
    if not isinstance(data, dict):
        return {"error": "expected a JSON object"}
    answer, question = data.get("answer"), data.get("question")
    category = data.get("category", "interview")
    duration = data.get("duration_seconds")
    if not isinstance(answer, str):
        return {"error": '"answer" must be a string'}
    if question is not None and not isinstance(question, str):
        return {"error": '"question" must be a string or null'}
    if category not in CATEGORIES:
        return {"error": f'"category" must be one of {", ".join(CATEGORIES)}'}
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
    ):
        return {"error": '"duration_seconds" must be a positive number or null'}
    try:
        analysis = analyse(answer, question, category=category, duration_seconds=duration)
    except Exception as exc:  # one odd answer must not stop a batch of thousands
        return {"error": f"could not analyse: {type(exc).__name__}: {exc}"}
    return analysis.to_dict() if full else compact(analysis)


class Command(BaseCommand):
    help = (
        "Analyse interview answers read from stdin. With --jsonl, each line is a JSON object "
        '{"question": str or null, "answer": str} (optional "category": interview, '
        'conversation, medical or general, and "duration_seconds") and each output line is '
        '{"star": {"situation": [[start, end], ...], "task": ..., "action": ..., "result": '
        '...}, "fillers": [{"form", "start", "end"}], "missing": [...], "hedges": [[start, '
        'end]], "words": n}; offsets are characters into the answer. A line that cannot be '
        'read gives {"error": "..."} on that output line instead; the command never stops '
        "on a bad line. Without --jsonl, all of stdin is one answer."
    )
    # call_command(..., stdin=StringIO(...)) in tests.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--jsonl", action="store_true", help="one JSON object per line in and out"
        )
        parser.add_argument("--question", default=None, help="the question (without --jsonl)")
        parser.add_argument(
            "--full", action="store_true", help="every field of the analysis, highlights too"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stream: IO[str] = options.get("stdin") or sys.stdin
        full = bool(options["full"])
        if not options["jsonl"]:
            analysis = analyse(stream.read(), options["question"])
            result = analysis.to_dict() if full else compact(analysis)
            self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2))
            return
        for line in stream:
            if not line.strip():
                continue
            self.stdout.write(json.dumps(analyse_line(line, full=full), ensure_ascii=False))
