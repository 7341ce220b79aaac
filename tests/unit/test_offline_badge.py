"""The offline coach: learners see a small badge; the configuration hint is for staff."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from chat.practice import services as practice_services

pytestmark = pytest.mark.django_db


@override_settings(OPENAI_API_KEY="", OPENAI_BASE_URL="", REDIS_URL="")
def test_detailed_health_tells_staff_how_to_configure_a_model(client: Client) -> None:
    ai = client.get("/health/detailed/").json()["services"]["ai_provider"]

    assert ai["mode"] == "offline"
    assert "OPENAI_API_KEY" in ai["hint"]


@override_settings(OPENAI_API_KEY="", OPENAI_BASE_URL="")
@pytest.mark.parametrize(("staff", "hinted"), [(False, False), (True, True)])
def test_only_staff_see_the_configuration_hint(client, make_user, persona, staff, hinted):
    user = make_user(nickname="Min-ji", is_staff=staff)
    conversation = practice_services.practice_start(user=user, persona=persona)
    client.force_login(user)

    html = client.get(f"/c/{conversation.pk}/").content.decode()

    assert 'data-testid="offline-mode"' in html
    assert ("OPENAI_API_KEY" in html) is hinted
