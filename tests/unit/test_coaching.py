"""What the offline coach says after an answer (chat/coach/coaching.py)."""

from __future__ import annotations

import re

import pytest

from chat.coach.analysis import analyse
from chat.coach.coaching import follow_up, offline_feedback, quote, unanswered_questions

QUESTION = "Tell me about a time you solved a difficult problem at work or school."
STRONG = (
    "Last year at my internship, our checkout page kept crashing and I had to find out why "
    "before the sale. So I reproduced the crash locally, and then I traced it to a race "
    "condition. I wrote a fix and added tests. As a result, crashes dropped by 90% and the "
    "sale went ahead on time."
)
WE_ONLY = (
    "We had a big project at school. We divided the work and we met every week. In the end "
    "we finished it and the professor was happy."
)
HYPOTHETICAL = "I would talk to the person first and try to understand their view."


def quoted(text: str) -> list[str]:
    return re.findall(r"“([^”]+)”", text)


def test_feedback_quotes_a_phrase_from_the_answer() -> None:
    text = offline_feedback(STRONG, QUESTION, "interview")
    phrases = quoted(text)
    assert phrases and phrases[0] in STRONG
    assert 3 <= len(phrases[0].split()) <= 8


def test_quote_does_not_end_on_a_little_word() -> None:
    answer = "The page now loads in under half a second, eight times faster."
    found = analyse(answer)
    assert quote(found, [(0, len(answer))]) == "The page now loads in under half"


def test_we_only_answer_is_asked_what_the_learner_did() -> None:
    text = offline_feedback(WE_ONLY, QUESTION, "interview")
    assert "yourself" in text or "yours" in text


def test_hypothetical_answer_is_asked_for_one_real_occasion() -> None:
    for variant in (0, 1):
        text = offline_feedback(HYPOTHETICAL, QUESTION, "interview", variant=variant)
        assert "real" in text or "really happened" in text
        assert "concrete" not in text  # nothing concrete to praise


def test_missing_result_is_the_tip() -> None:
    answer = (
        "At my part-time job in a bakery, the oven stopped working on a Saturday. I had to "
        "keep the shop open. I called the manager and I moved the orders to our other shop."
    )
    text = offline_feedback(answer, QUESTION, "interview", variant=0)
    assert "result" in text.lower() or "turn out" in text


def test_unquantified_result_asks_for_a_number() -> None:
    answer = (
        "At my previous job the reports were slow. I was asked to improve them. I rewrote the "
        "main query and I added an index. As a result the reports became much faster."
    )
    text = offline_feedback(answer, QUESTION, "interview")
    assert "number" in text.lower()


def test_a_complete_answer_is_praised_without_a_change_label() -> None:
    text = offline_feedback(STRONG, QUESTION, "interview")
    assert "**Next time:**" not in text
    assert "STAR" in text or "well done" in text


def test_the_one_tip_is_labelled_in_bold() -> None:
    text = offline_feedback(WE_ONLY, QUESTION, "interview")
    assert text.count("**") == 2


def test_variants_are_deterministic_and_differ() -> None:
    first = offline_feedback(WE_ONLY, QUESTION, "interview", variant=0)
    assert first == offline_feedback(WE_ONLY, QUESTION, "interview", variant=0)
    assert first != offline_feedback(WE_ONLY, QUESTION, "interview", variant=1)


def test_small_talk_gets_one_correction_and_never_star_advice() -> None:
    answer = "Yesterday I go to the park with my freind. It was fun."
    text = offline_feedback(answer, "What do you usually do on weekends?", "conversation")
    assert "“I go” → “I went”" in text
    assert "freind" not in text  # one correction only: the grammar one
    for word in ("STAR", "result", "situation", "Next time"):
        assert word not in text


def test_small_talk_follow_up_asks_about_what_the_learner_mentioned() -> None:
    text = offline_feedback(
        "On Sunday I walked in the park near my house.", None, "conversation", variant=0
    )
    assert "the park" in text
    assert text.rstrip().endswith("?")


@pytest.mark.parametrize(
    ("answer", "about"),
    [
        ("I watched a really good movie with my sister.", "movie"),
        ("I usually stay at home with my dog.", "dog"),
        ("I want to visit Jeju because it is beautiful.", "Jeju"),
        ("I went shopping with my mother.", "mother"),
    ],
)
def test_follow_up_picks_up_a_topic(answer: str, about: str) -> None:
    assert about in follow_up(answer)
    assert about in follow_up(answer, variant=1)


def test_medical_feedback_asks_for_what_the_history_lacks() -> None:
    text = offline_feedback("I have a headache and I feel sick.", None, "medical")
    assert "When did it start?" in text
    started = offline_feedback("My head hurts. It began yesterday.", None, "medical")
    assert "When did it start?" not in started
    assert "How long" in started


def test_medical_feedback_with_a_full_history_says_so() -> None:
    text = offline_feedback(
        "It started three days ago. I have a sharp pain in my back, seven out of ten, and it "
        "has lasted all day.",
        None,
        "medical",
    )
    assert "clear history" in text


def test_answered_bank_questions_are_not_asked_again() -> None:
    bank = [
        "When did the symptoms start?",
        "On a scale from one to ten, how bad is it?",
        "Do you have any allergies?",
    ]
    assert unanswered_questions(bank, ["It started yesterday morning."]) == bank[1:]
    assert unanswered_questions(bank, ["It is about eight out of ten."]) == [bank[0], bank[2]]


def test_feedback_is_plain_text_without_html() -> None:
    for answer in (STRONG, WE_ONLY, HYPOTHETICAL):
        for category in ("interview", "conversation", "medical"):
            text = offline_feedback(answer, None, category)
            assert "<" not in text and ">" not in text.replace("→", "")


def test_a_very_short_answer_is_asked_for_more() -> None:
    for category in ("interview", "general"):
        assert "short" in offline_feedback("I fixed it.", QUESTION, category)
    assert "more" in offline_feedback("ok", None, "conversation")
    assert offline_feedback("", None, "medical") == "When did it start?"
