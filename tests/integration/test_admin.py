"""Staff admin: people (search, filter, AI limit), coaches, conversations and the AI ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client, make_user: Callable[..., User]) -> Client:
    client.force_login(make_user(email="boss@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    return {
        "kim": make_user(email="kim@example.com", nickname="Minji", role=User.Role.LEARNER),
        "lee": make_user(email="lee@example.com", nickname="Coach Lee", role=User.Role.COACH),
    }


def changelist(client: Client, **params: str) -> str:
    response = client.get(reverse("admin:accounts_user_changelist"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_user_changelist_opens_for_a_superuser(
    staff_client: Client, people: dict[str, User]
) -> None:
    html = changelist(staff_client)

    assert "kim@example.com" in html
    assert "lee@example.com" in html


def test_user_changelist_is_refused_to_a_learner(client: Client, people: dict[str, User]) -> None:
    client.force_login(people["kim"])

    response = client.get(reverse("admin:accounts_user_changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_user_changelist_searches_by_email_and_nickname(
    staff_client: Client, people: dict[str, User]
) -> None:
    by_email = changelist(staff_client, q="kim@")
    assert "kim@example.com" in by_email
    assert "lee@example.com" not in by_email

    by_nickname = changelist(staff_client, q="coach lee")
    assert "lee@example.com" in by_nickname
    assert "kim@example.com" not in by_nickname


def test_user_changelist_filters_by_role(staff_client: Client, people: dict[str, User]) -> None:
    coaches = changelist(staff_client, role__exact="coach")
    assert "lee@example.com" in coaches
    assert "kim@example.com" not in coaches

    learners = changelist(staff_client, role__exact="learner")
    assert "kim@example.com" in learners
    assert "lee@example.com" not in learners


def test_staff_changes_a_users_daily_ai_limit_on_the_change_form(
    staff_client: Client, people: dict[str, User]
) -> None:
    kim = people["kim"]
    url = reverse("admin:accounts_user_change", args=[kim.pk])
    assert staff_client.get(url).status_code == 200

    response = staff_client.post(
        url,
        {
            "email": kim.email,
            "nickname": kim.nickname,
            "role": kim.role,
            "organisation": "Cardiology",
            "daily_ai_limit": "12",
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    kim.refresh_from_db()
    assert kim.daily_ai_limit == 12
    assert kim.organisation == "Cardiology"
    assert kim.check_password("Correct-Horse-42!")  # the password is untouched


def test_staff_changes_daily_ai_limit_from_the_list(
    staff_client: Client, people: dict[str, User]
) -> None:
    kim, lee = people["kim"], people["lee"]
    rows = User.objects.order_by("email")  # the changelist's ordering
    data: dict[str, Any] = {
        "form-TOTAL_FORMS": str(rows.count()),
        "form-INITIAL_FORMS": str(rows.count()),
        "_save": "Save",
    }
    for i, user in enumerate(rows):
        data[f"form-{i}-id"] = str(user.pk)
        data[f"form-{i}-daily_ai_limit"] = "20" if user.pk == kim.pk else ""

    response = staff_client.post(reverse("admin:accounts_user_changelist"), data)

    assert response.status_code == 302
    kim.refresh_from_db()
    lee.refresh_from_db()
    assert kim.daily_ai_limit == 20
    assert lee.daily_ai_limit is None


def test_persona_admin_pages_load(staff_client: Client, persona: Any) -> None:
    listing = staff_client.get(reverse("admin:chat_persona_changelist"))
    assert listing.status_code == 200
    assert persona.name in listing.content.decode()

    change = staff_client.get(reverse("admin:chat_persona_change", args=[persona.pk]))
    assert change.status_code == 200
    assert staff_client.get(reverse("admin:chat_persona_add")).status_code == 200


def test_conversation_admin_shows_its_messages_inline(
    staff_client: Client, people: dict[str, User], persona: Any
) -> None:
    from chat import conversations
    from chat.practice import services as practice_services

    conversation = practice_services.practice_start(user=people["kim"], persona=persona)
    conversations.message_create(
        conversation=conversation, author=people["kim"], content="I once fixed a flaky build."
    )

    listing = staff_client.get(reverse("admin:chat_conversation_changelist"))
    assert listing.status_code == 200
    assert conversation.title in listing.content.decode()

    change = staff_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    assert change.status_code == 200
    html = change.content.decode()
    assert "I once fixed a flaky build." in html
    assert 'id="messages-group"' in html


def test_ai_usage_admin_lists_the_ledger_with_per_user_totals(
    staff_client: Client, people: dict[str, User]
) -> None:
    from chat.models import AIUsage

    today = timezone.localdate()
    AIUsage.objects.create(user=people["kim"], day=today, outcome=AIUsage.Outcome.COMPLETE)
    AIUsage.objects.create(
        user=people["kim"], day=today, outcome=AIUsage.Outcome.FAILED, refunded=True
    )

    response = staff_client.get(reverse("admin:chat_aiusage_changelist"))

    assert response.status_code == 200
    rows = list(response.context["per_user_day"])
    assert rows == [
        {
            "day": today,
            "user__email": "kim@example.com",
            "user__nickname": "Minji",
            "user__daily_ai_limit": None,
            "counted": 1,
            "total": 2,
        }
    ]
    assert "Replies per user per day" in response.content.decode()
