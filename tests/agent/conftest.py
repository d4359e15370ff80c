"""Fixtures for agent tests: a ChatService over real Docker with a chosen model."""

from __future__ import annotations

import dataclasses

import pytest

from agent.events import ChatEvent
from agent.service import ChatService
from settings import load_settings


@pytest.fixture
async def make_service(executor, tmp_path):
    """Factory: ChatService(model) sharing the session-wide executor; data in tmp_path."""
    made: list[ChatService] = []

    def make(model=None, data_dir=None) -> ChatService:
        settings = dataclasses.replace(load_settings({}), data_dir=data_dir or tmp_path / "data")
        service = ChatService(settings, executor=executor, model=model)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.runner.close()  # the shared executor stays open for other tests


async def collect(stream) -> list[ChatEvent]:
    return [event async for event in stream]
