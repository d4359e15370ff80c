"""How long the app waits before retrying a model call, and the words a failure is shown in."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agent.model_errors import describe_model_error, describe_retry
from agent.models import RetryPolicy, hinted_delay


class Refused(Exception):
    def __init__(self, message: str, status: int = 429, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status_code = status
        self.response = SimpleNamespace(headers=headers or {})


@pytest.mark.parametrize(
    ("exc", "seconds"),
    [
        (Refused("x", headers={"retry-after-ms": "250"}), 0.25),
        (Refused("x", headers={"retry-after": "7"}), 7.0),
        (Refused("Rate limit reached. Please try again in 20s."), 20.0),
        (Refused("Please try again in 1.5 seconds"), 1.5),
        (Refused("try again in 250ms"), 0.25),
        (Refused("{'retryDelay': '3s'}"), 3.0),
        (Refused("quota exceeded"), None),
        (Refused("x", headers={"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}), None),
    ],
)
def test_the_servers_requested_wait_is_found(exc, seconds) -> None:
    assert hinted_delay(exc) == pytest.approx(seconds) if seconds else hinted_delay(exc) is None


def test_a_wait_longer_than_the_policy_allows_is_not_retried() -> None:
    policy = RetryPolicy(attempts=3, base_delay_s=1.0, max_delay_s=60.0)
    assert policy.delay(1, Refused("Please try again in 20s.")) == 20.0
    assert policy.delay(1, Refused("Please try again in 90s.")) is None
    assert 0.5 <= policy.delay(1, Refused("busy", 503)) <= 1.0  # backoff with jitter
    assert 1.0 <= policy.delay(2, Refused("busy", 503)) <= 2.0


def test_retry_notices_state_the_cause_without_advice() -> None:
    assert describe_retry(Refused("x"), model="m") == "m is rate limited (429)."
    assert describe_retry(Refused("x", 503), model="m") == "m is unavailable or overloaded (503)."


def test_litellm_wrapping_is_removed_from_the_providers_words() -> None:
    message = "litellm.BadRequestError: OpenAIException - Unknown parameter: 'foo'."
    said = describe_model_error(message=message, exc=Refused(message, 400), model="m")
    assert said == "m refused the request (400): Unknown parameter: 'foo'."
