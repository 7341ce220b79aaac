"""`manage.py coach_feedback --jsonl`: one analysis per line, an error object for a bad line."""

from __future__ import annotations

import io
import json

from django.core.management import call_command

ANSWER = (
    "Um, last year at my internship, our checkout page kept crashing. I had to fix it. "
    "I traced the bug and fixed it. Crashes dropped by 90%."
)


def run(*lines: str, full: bool = False) -> list[dict[str, object]]:
    out = io.StringIO()
    stdin = io.StringIO("".join(line + "\n" for line in lines))
    call_command(
        "coach_feedback", "--jsonl", *(["--full"] if full else []), stdin=stdin, stdout=out
    )
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_each_line_gets_star_fillers_missing_hedges_and_words() -> None:
    [result] = run(json.dumps({"question": None, "answer": ANSWER}))
    assert set(result) == {"star", "fillers", "missing", "hedges", "words"}
    star = result["star"]
    assert isinstance(star, dict)
    assert set(star) == {"situation", "task", "action", "result"}
    start, end = star["result"][0]
    assert ANSWER[start:end] == "Crashes dropped by 90%."
    assert result["fillers"] == [{"form": "um", "start": 0, "end": 2}]
    assert result["missing"] == []
    assert result["words"] == 27


def test_an_absent_part_is_an_empty_list() -> None:
    [result] = run(json.dumps({"question": "Q?", "answer": "I fixed a bug in the login page."}))
    star = result["star"]
    assert isinstance(star, dict)
    assert star["result"] == [] and star["situation"] == []
    assert "result" in result["missing"]  # type: ignore[operator]


def test_bad_lines_get_an_error_object_on_their_own_line() -> None:
    results = run(
        "not json",
        json.dumps({"answer": 42}),
        json.dumps(["a list"]),
        json.dumps({"answer": "Hi.", "category": "poetry"}),
        json.dumps({"answer": "Hi.", "duration_seconds": -1}),
        json.dumps({"question": None, "answer": ANSWER}),
    )
    assert len(results) == 6
    assert all(set(r) == {"error"} for r in results[:5])
    assert "star" in results[5]


def test_category_and_duration_are_read() -> None:
    [result] = run(
        json.dumps(
            {
                "answer": "Yesterday I go to the park.",
                "category": "conversation",
                "duration_seconds": 3,
            }
        ),
        full=True,
    )
    assert result["words_per_minute"] == 120.0
    assert result["missing"] == []
    assert result["grammar"][0]["corrected"] == "I went"  # type: ignore[index]


def test_blank_lines_are_skipped() -> None:
    assert run("", json.dumps({"answer": "I fixed it."}), "  ") != []
    assert len(run("", json.dumps({"answer": "I fixed it."}), "  ")) == 1


def test_help_says_bad_lines_give_an_error_object() -> None:
    from chat.management.commands.coach_feedback import Command

    assert '{"error": "..."}' in Command.help


def test_without_jsonl_all_of_stdin_is_one_answer() -> None:
    out = io.StringIO()
    call_command("coach_feedback", stdin=io.StringIO(ANSWER + "\n"), stdout=out)
    result = json.loads(out.getvalue())
    assert result["words"] == 27
    assert result["fillers"] == [{"form": "um", "start": 0, "end": 2}]
