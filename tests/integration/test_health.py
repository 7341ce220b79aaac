"""Health endpoints: cheap liveness, and a per-service readiness report (no sign-in needed)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

LOCAL_REDIS = "redis://127.0.0.1:6379/12"
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.mark.django_db
def test_health_is_ok_without_sign_in_and_touches_no_database(
    client: Client, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_health_refuses_post(client: Client) -> None:
    assert client.post("/health/").status_code == 405


@pytest.mark.django_db
@override_settings(REDIS_URL="")
def test_detailed_health_reports_each_service_ok_without_sign_in(client: Client) -> None:
    response = client.get("/health/detailed/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    services = body["services"]
    assert services["database"]["status"] == "ok"
    assert services["channel_layer"]["status"] == "ok"
    assert services["ai_provider"]["status"] == "ok"
    # Redis is only checked when configured.
    assert "redis" not in services


@pytest.mark.django_db
@override_settings(REDIS_URL=DEAD_REDIS)
def test_detailed_health_is_503_when_redis_is_down(client: Client) -> None:
    response = client.get("/health/detailed/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["services"]["redis"]["status"] == "down"
    assert body["services"]["redis"]["error"]
    # The others are still reported, and still fine.
    assert body["services"]["database"]["status"] == "ok"


@pytest.mark.django_db
@override_settings(REDIS_URL=LOCAL_REDIS)
def test_detailed_health_reports_a_running_redis_ok(client: Client) -> None:
    response = client.get("/health/detailed/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["services"]["redis"]["status"] == "ok"
