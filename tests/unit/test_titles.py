"""The model-written title: the request's messages, and cleaning what the model answered."""

from __future__ import annotations

import pytest

from chat.coach import titles
from chat.coach.contract import Turn
from chat.models import Conversation


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("Leading a billing migration", "Leading a billing migration"),
        ('"Leading a billing migration"', "Leading a billing migration"),
        ("“Leading a billing migration.”", "Leading a billing migration"),
        ("**Leading a billing migration**", "Leading a billing migration"),
        ("# Leading a billing migration", "Leading a billing migration"),
        ("`Leading a billing migration`", "Leading a billing migration"),
        ("Title: Leading a billing migration", "Leading a billing migration"),
        ('**Title:** "Leading a billing migration"', "Leading a billing migration"),
        ("  Leading a\tbilling   migration \n", "Leading a billing migration"),
        (
            "Leading a billing migration\n\nThis title sums up the answer.",
            "Leading a billing migration",
        ),
        ("```\nLeading a billing migration\n```", "Leading a billing migration"),
        ("- Leading a billing migration", "Leading a billing migration"),
        ("[Leading a billing migration](https://example.com)", "Leading a billing migration"),
        ("「결제 시스템 이전 경험」", "결제 시스템 이전 경험"),
        ("제목: 결제 시스템 이전 경험", "결제 시스템 이전 경험"),
        ("<b>Leading</b> a billing migration", "Leading a billing migration"),
        ("Why 3 < 5 offers matter", "Why 3 < 5 offers matter"),
    ],
)
def test_the_output_is_cleaned_to_a_plain_line(content, title):
    assert titles.clean_title(content) == title


@pytest.mark.parametrize(
    "content", [None, "", "   \n\n", '""', "**", "```\n```", "...", "— —", "「」"]
)
def test_an_empty_or_markless_output_is_rejected(content):
    assert titles.clean_title(content) == ""


def test_a_long_output_is_cut_at_a_word_within_the_title_field():
    limit = Conversation._meta.get_field("title").max_length
    assert limit == titles.TITLE_MAX_LENGTH
    content = " ".join(["migration"] * 40)
    title = titles.clean_title(content)
    assert len(title) <= limit
    assert title.endswith("…")
    assert title[:-1].split() == ["migration"] * len(title[:-1].split())  # whole words


def test_a_title_with_no_spaces_is_still_cut_to_the_limit():
    title = titles.clean_title("가" * 500)
    assert 1 < len(title) <= titles.TITLE_MAX_LENGTH


def test_control_characters_never_reach_the_title():
    assert (
        titles.clean_title("Leading\x00 a\x1b billing migration") == "Leading a billing migration"
    )


def test_the_request_holds_the_instruction_and_the_conversation_as_a_transcript():
    history = [
        Turn(role="assistant", content="Tell me about a time you fixed a slow process."),
        Turn(role="user", content="Our  releases took two days;\nI automated the tests."),
    ]
    messages = titles.build_messages(history, "Good. What was the result?")
    system, user = messages
    assert system["role"] == "system"
    assert "at most 6 words" in system["content"]
    assert "language the conversation is held in" in system["content"]
    assert "no quotes" in system["content"]
    assert user == {
        "role": "user",
        "content": (
            "Coach: Tell me about a time you fixed a slow process.\n"
            "Learner: Our releases took two days; I automated the tests.\n"
            "Coach: Good. What was the result?"
        ),
    }


def test_a_very_long_turn_is_shortened_in_the_request():
    messages = titles.build_messages([Turn(role="user", content="word " * 2000)], "")
    assert len(messages[1]["content"]) <= len("Learner: ") + titles.TURN_CHARS
    assert "Coach:" not in messages[1]["content"]  # an empty reply adds no line
