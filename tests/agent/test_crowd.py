"""A crowd through the chat service: many people open a new chat at the same moment and each
sends a few commands. Every chat must be created, every command must run in that chat's own
sandbox, and nobody may see an error (issue #16: ADK's SQLite store used to fail with
`database is locked` here)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from agent.events import ErrorEvent, ToolCallFinished
from agent.service import ChatService
from settings import load_settings

pytestmark = pytest.mark.docker

TURNS = 4


@pytest.mark.parametrize("people", [50, 100])
async def test_a_crowd_of_new_chats_all_succeed(people, make_executor, tmp_path):
    executor = make_executor(  # the app's defaults: warm pool and per-user limits on
        pool_size=2,
        max_executions_per_minute=60,
        max_concurrent_executions=4,
        max_live_sessions=10,
    )
    settings = dataclasses.replace(load_settings({}), data_dir=tmp_path / "fresh-data")
    service = ChatService(settings, executor=executor, model="offline")
    try:

        async def person(n: int) -> list[str]:
            user = f"crowd-user-{n}"
            session = await service.new_session(user)
            outputs = []
            for turn in range(TURNS):
                async for event in service.stream(user, session, f"$ echo {n}-{turn}"):
                    if isinstance(event, ErrorEvent):
                        raise AssertionError(f"{user}: {event.message}")
                    if isinstance(event, ToolCallFinished):
                        outputs.append(event.response["stdout"])
            return outputs

        results = await asyncio.gather(*(person(n) for n in range(people)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"{len(failures)} of {people} failed, first: {failures[0]!r}"
        for n, outputs in enumerate(results):
            assert outputs == [f"{n}-{turn}\n" for turn in range(TURNS)]
        chats = await asyncio.gather(
            *(service.list_sessions(f"crowd-user-{n}") for n in range(people))
        )
        assert all(len(c) == 1 for c in chats)  # one chat each, all stored
    finally:
        await service.close(executor=False)
