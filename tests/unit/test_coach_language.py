"""The coach speaks the learner's language, except the English-practice coaches; persona
words in both languages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import translation

from chat.coach.prompts import build_request
from chat.models import Persona
from chat.practice import services as practice

pytestmark = pytest.mark.django_db


@pytest.fixture
def medical() -> Persona:
    return Persona.objects.create(
        name="Clinic nurse",
        name_ko="진료실 간호사",
        slug="test-nurse",
        category=Persona.Category.MEDICAL,
        description="Ask about symptoms.",
        description_ko="증상에 대해 물어보세요.",
        system_prompt="You are a nurse.",
        opening_line="Hello, what brings you in?",
        opening_line_ko="안녕하세요, 어디가 불편하세요?",
    )


def test_a_general_coach_answers_in_korean_for_a_korean_learner(
    medical: Persona, make_user: Callable[..., Any]
) -> None:
    learner = make_user(language="ko")
    conversation = practice.practice_start(user=learner, persona=medical)
    request = build_request(conversation, "ko")
    assert request.system_prompt.startswith("You are a nurse.")
    assert "write your replies in Korean" in request.system_prompt
    assert request.opening_line == "안녕하세요, 어디가 불편하세요?"


def test_an_english_learner_gets_no_language_instruction(
    medical: Persona, make_user: Callable[..., Any]
) -> None:
    conversation = practice.practice_start(user=make_user(language="en"), persona=medical)
    request = build_request(conversation, "en")
    assert request.system_prompt == "You are a nurse."
    assert request.opening_line == "Hello, what brings you in?"


def test_interview_coach_stays_english_practice_in_korean(
    persona: Persona, make_user: Callable[..., Any]
) -> None:
    # The shipped interview coach is marked English practice by migration 0006.
    persona.refresh_from_db()
    persona.opening_line_ko = "안녕하세요"
    persona.save()
    learner = make_user(language="ko")
    conversation = practice.practice_start(user=learner, persona=persona)
    request = build_request(conversation, "ko")
    assert persona.english_practice
    assert "Korean" not in request.system_prompt
    assert request.opening_line == persona.opening_line
    assert conversation.messages.get().content == persona.opening_line


def test_the_opening_message_is_in_the_learners_language(
    medical: Persona, make_user: Callable[..., Any]
) -> None:
    conversation = practice.practice_start(user=make_user(language="ko"), persona=medical)
    assert conversation.messages.get().content == "안녕하세요, 어디가 불편하세요?"


def test_the_room_coach_answers_in_the_request_language_when_none_is_given(room: Any) -> None:
    with translation.override("ko"):
        assert "write your replies in Korean" in build_request(room).system_prompt
    with translation.override("en"):
        assert "Korean" not in build_request(room).system_prompt


def test_persona_words_follow_the_active_language(medical: Persona) -> None:
    with translation.override("ko"):
        assert medical.display_name == "진료실 간호사"
        assert medical.display_description == "증상에 대해 물어보세요."
    with translation.override("en"):
        assert medical.display_name == "Clinic nurse"
    medical.name_ko = ""
    with translation.override("ko"):
        assert medical.display_name == "Clinic nurse"


def test_an_english_practice_flag_keeps_any_coach_in_english(medical: Persona) -> None:
    medical.english_practice = True
    medical.save()
    conversation = medical.conversation_set.model.objects.create(
        persona=medical, title="t", owner=_owner()
    )
    assert "Korean" not in build_request(conversation, "ko").system_prompt
    assert build_request(conversation, "ko").opening_line == medical.opening_line


def _owner() -> Any:
    from accounts.models import User

    return User.objects.create_user("flag@example.com", "x-Password-9")


def test_shipped_coaches_are_english_practice_with_korean_names() -> None:
    from chat.coach.personas import PERSONA_EXTRAS

    shipped = Persona.objects.filter(slug__in=PERSONA_EXTRAS)
    assert shipped.count() == len(PERSONA_EXTRAS)
    assert all(p.english_practice and p.name_ko for p in shipped)


def test_the_coach_choice_page_shows_korean_names(
    medical: Persona, make_user: Callable[..., Any], client: Any
) -> None:
    client.force_login(make_user(language="ko"))
    html = client.get("/new/").content.decode()
    assert "진료실 간호사" in html
    assert "증상에 대해 물어보세요." in html
