"""The bench's own parsing and reporting (the bench itself runs in `make bench QUICK=1`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import wsclient as wc
from bench.report import BEGIN, END, Report, write_results

MID = "3959fe8c-db03-4fb7-a8cb-2e7b8f14f974"
APPEND = '<div hx-swap-oob="beforeend:#messages">'
TOKEN = f'<span hx-swap-oob="beforeend:#message-{MID}-body">'


def article(status: str, body: str, *, oob: bool) -> str:
    swap = ' hx-swap-oob="true"' if oob else ""
    return (
        f'<article id="message-{MID}" class="message" data-testid="message" '
        f'data-role="assistant" data-status="{status}" data-kind="text" data-seq="3"{swap}>'
        f'<div id="message-{MID}-body" class="body" hx-disable>{body}</div></article>'
    )


def test_tracker_follows_a_streamed_reply_to_its_final_frame():
    async def feed() -> wc.ReplyTrace:
        tracker = wc.Tracker()
        tracker.feed(1.0, 1, APPEND + article("streaming", "", oob=False) + "</div>")
        tracker.feed(1.1, 2, TOKEN + "Fish &amp; chips</span>")
        tracker.feed(1.2, 3, TOKEN + " &lt;b&gt;</span>")
        tracker.feed(1.3, 4, article("complete", "<p>Fish &amp; chips &lt;b&gt;</p>", oob=True))
        return await wc.next_reply(tracker, 1)

    trace = asyncio.run(feed())
    assert trace.text == "Fish & chips <b>"
    assert trace.done.is_set() and trace.final_text == "Fish & chips <b>"
    assert trace.gaps() == pytest.approx([0.1, 0.1])
    assert trace.check("complete", "Fish & chips <b>", "Fish & chips <b>", frames_sent=2) == []


def test_tracker_fails_a_page_that_showed_a_hole():
    """A token frame dropped and the next one appended after the hole: the page was wrong."""
    trace = wc.ReplyTrace(MID, parts=["Fish", " chips"], token_frames=2, finals=1)
    trace.final_text = "Fish and chips"
    problems = trace.check("complete", "Fish and chips", None, frames_sent=3)
    assert trace.repaired == 1  # counted
    assert any("not a prefix" in p for p in problems)


def test_tracker_counts_dropped_frames_the_page_waited_out():
    """Frames dropped after a gap the page noticed, the final frame made it whole: counted."""
    trace = wc.ReplyTrace(MID, parts=["Fish"], token_frames=1, finals=1)
    trace.final_text = "Fish and chips"
    assert trace.check("complete", "Fish and chips", None, frames_sent=3) == []
    assert (trace.repaired, trace.frames_sent) == (2, 3)


def test_room_marks_count_each_delivery():
    tracker = wc.Tracker()
    frame = APPEND + '<article id="message-x" data-role="user">seq=7 t=1000</article></div>'
    tracker.feed(0.0, 5000, frame)
    tracker.feed(0.0, 6000, frame)
    assert tracker.mark_counts == {7: 2}
    assert tracker.marks == [(7, 4000), (7, 5000)]


def test_results_keep_the_hand_written_analysis(tmp_path: Path):
    path = tmp_path / "results.md"
    path.write_text(f"# Results\n\nAnalysis above.\n\n{BEGIN}\nold\n{END}\n\nAnalysis below.\n")
    report = Report(quick=True)
    report.add("tokens/s", 900.0, "tok/s", baseline=1000.0, target="≥ 80 %", met=True)
    write_results(path, report.markdown("Machine: test.", 1.0))
    text = path.read_text()
    assert "Analysis above." in text and "Analysis below." in text and "old" not in text
    assert "| tokens/s | 900.0 tok/s | 1,000.0 tok/s | 0.90× | ≥ 80 % ✅ |" in text
