"""The quota tells one reset moment, and a Stop before the first word gives the reply back."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

from chat import frames
from chat.coach import quota, replies, sending
from chat.models import Message
from chat.practice import services as practice_services
from project import context_processors

pytestmark = pytest.mark.django_db


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


@pytest.fixture
def conversation(learner, persona):
    return practice_services.practice_start(user=learner, persona=persona)


def _reply(learner, conversation):
    return replies.exchange_start(
        user=learner, conversation=conversation, text="I led a team.", ask_ai=True, require_ai=True
    )


def _finish(exchange, status, content):
    replies.reply_finish(
        message_id=exchange.reply.pk,
        content=content,
        status=status,
        metadata={},
        usage_id=exchange.usage_id,
    )


def test_stop_before_the_first_token_refunds_the_reply(settings, learner, conversation):
    settings.AI_DAILY_LIMIT = 3
    _finish(_reply(learner, conversation), Message.Status.STOPPED, "")

    assert quota.remaining(learner) == 3


def test_stop_after_tokens_arrived_keeps_the_reply_counted(settings, learner, conversation):
    settings.AI_DAILY_LIMIT = 3
    _finish(_reply(learner, conversation), Message.Status.STOPPED, "Tell me about")

    assert quota.remaining(learner) == 2


def test_refusal_names_the_reset_zone_not_a_bare_midnight(settings):
    settings.TIME_ZONE = "Asia/Seoul"

    text = sending.quota_refused_text()

    assert "KST" in text
    assert "midnight" not in text


def test_quota_notice_carries_the_one_reset_moment_and_its_cause():
    moment = quota.reset_at()

    html = frames.notice("No replies left.", reset_at=moment, cause="quota")

    assert f'datetime="{moment.isoformat()}"' in html
    assert "data-reset" in html
    assert 'data-cause="quota"' in html


def test_the_badge_reset_matches_the_refusal_moment():
    moment = quota.reset_at()
    html = render_to_string(
        "chat/partials/quota.html", {"remaining": 0, "limit": 5, "reset_at": moment}
    )

    assert f'datetime="{moment.isoformat()}"' in html
    assert 'data-remaining="0"' in html


def test_every_signed_in_page_gets_the_header_quota(learner):
    request = RequestFactory().get("/")
    request.user = learner

    context = context_processors.quota(request)

    assert context["quota"]["remaining"] == quota.remaining(learner)
    assert context["quota"]["reset_at"] == quota.reset_at()


def test_the_stop_button_says_which_stops_are_given_back(client, learner, conversation):
    client.force_login(learner)

    html = client.get(f"/c/{conversation.pk}/").content.decode()

    stop = html[html.index('data-testid="stop"') :].split(">", 1)[0]
    assert "before the first word" in stop and "counts" in stop
