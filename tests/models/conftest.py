"""Fixtures for the model tier: fake model APIs on loopback and ADK runners that use them.

The runners use the real model classes (ADK's `Gemini` over google-genai, ADK's `LiteLlm` over
LiteLLM and the openai SDK); only the server at the other end is ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from google.adk.agents import LlmAgent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.events import Event
from google.adk.models import BaseLlm, Gemini
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

# Retries fast enough for tests: 50 ms, then 100 ms, no jitter.
FAST_RETRY = types.HttpRetryOptions(attempts=3, initial_delay=0.05, max_delay=0.2, jitter=0)


async def get_weather(city: str) -> dict:
    """Return today's weather in a city.

    Args:
      city: The city name.
    """
    return {"city": city, "weather": "sunny"}


@pytest.fixture
def fake_gemini(monkeypatch) -> FakeGemini:
    """A started fake Gemini API, with google-genai pointed at it through the environment."""
    with FakeGemini() as fake:
        fake.use_in(monkeypatch)
        yield fake


@pytest.fixture
def fake_openai(monkeypatch) -> FakeOpenAI:
    """A started fake OpenAI-compatible API (LiteLLM gets its URL as `api_base`)."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        yield fake


@pytest.fixture
async def make_runner() -> AsyncIterator[Callable[..., Runner]]:
    """Factory: a Runner over one LlmAgent with `model` and `tools`; all closed at the end."""
    made: list[Runner] = []

    def make(model: BaseLlm, *tools: Callable) -> Runner:
        agent = LlmAgent(
            name="helper", model=model, instruction="Answer briefly.", tools=list(tools)
        )
        runner = Runner(
            app_name="models",
            agent=agent,
            session_service=InMemorySessionService(),
            auto_create_session=True,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.close()


def gemini(**kwargs) -> Gemini:
    return Gemini(model="gemini-2.5-flash", **kwargs)


@dataclass
class Turn:
    """The events one `run_async` yielded, with the views the tests assert on."""

    events: list[Event] = field(default_factory=list)

    @property
    def final(self) -> list[Event]:
        return [e for e in self.events if not e.partial]

    @property
    def partial_texts(self) -> list[str]:
        return [p.text for e in self.events if e.partial for p in _parts(e) if p.text]

    @property
    def answer(self) -> str:
        """The text of the last complete model event (what the user reads)."""
        texts = ["".join(p.text or "" for p in _parts(e)) for e in self.final]
        return next((t for t in reversed(texts) if t), "")

    @property
    def calls(self) -> list[tuple[str, dict]]:
        return [(c.name, dict(c.args or {})) for e in self.final for c in e.get_function_calls()]

    @property
    def responses(self) -> list[dict]:
        return [dict(r.response or {}) for e in self.final for r in e.get_function_responses()]

    @property
    def errors(self) -> list[tuple[str | None, str | None]]:
        return [(e.error_code, e.error_message) for e in self.events if e.error_code]


def _parts(event: Event) -> list[types.Part]:
    return list(event.content.parts or []) if event.content else []


async def play(
    runner: Runner,
    text: str,
    turn: Turn | None = None,
    *,
    session_id: str = "chat",
    streaming: StreamingMode = StreamingMode.SSE,
    abort_signal=None,
) -> Turn:
    """Send `text` as the user and collect the events into `turn` (pass one in to keep what
    arrived before an exception, inside `pytest.raises`)."""
    turn = turn if turn is not None else Turn()
    async for event in runner.run_async(
        user_id="user",
        session_id=session_id,
        new_message=types.Content(role="user", parts=[types.Part(text=text)]),
        run_config=RunConfig(streaming_mode=streaming),
        abort_signal=abort_signal,
    ):
        turn.events.append(event)
    return turn
