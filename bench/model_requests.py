"""Bytes the app's agent sends a model: the first request, and what each tool round trip adds.

    .venv/bin/python bench/model_requests.py [--round-trips 3]

The real path (ChatService, the model built from its string, the app's agent with its tools,
skills and instruction, real Docker) against the fake Gemini and OpenAI-compatible APIs of the
tests: one chat per model; the model runs `execute_bash` (`echo round-N`) in turn, then answers.
A request's size is its body on the wire, which a token bill grows with. Saves
bench/results/model_requests.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price list from the internet

from agent.service import ChatService
from bench._common import publish
from executor import DockerExecutionClient
from settings import load_settings
from tests.fakes import gemini as g
from tests.fakes import openai as o

BEFORE = {"gemini-2.5-flash": 9848, "openai/fake-model": 9942}  # first request, before issue 15


@dataclasses.dataclass
class Measured:
    model: str
    sizes: list[int]  # body bytes of each model request of the turn
    system_chars: int
    tools_bytes: int


async def measure(model: str, fake, executor, round_trips: int) -> Measured:
    if isinstance(fake, g.FakeGemini):
        steps = [g.call("execute_bash", {"command": f"echo round-{i}"}) for i in range(round_trips)]
        fake.play(*steps, g.text("Done."))
    else:
        steps = [o.call("execute_bash", {"command": f"echo round-{i}"}) for i in range(round_trips)]
        fake.play(*steps, o.text("Done."))
    os.environ.update(fake.env())
    with tempfile.TemporaryDirectory() as data:
        settings = dataclasses.replace(load_settings({}), data_dir=Path(data))
        service = ChatService(settings, executor=executor, model=model)
        session = await service.new_session("bench")
        try:
            async for _event in service.stream("bench", session, "Run the rounds."):
                pass
        finally:
            await service.delete_chat("bench", session)
            await service.close(executor=False)
    requests = fake.model_requests
    first = requests[0].json
    if isinstance(fake, g.FakeGemini):
        system = "".join(p["text"] for p in first["systemInstruction"]["parts"])
    else:
        system = "".join(
            m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
            for m in first["messages"]
            if m["role"] == "system"
        )
    tools_bytes = len(json.dumps(first["tools"]).encode())
    fake.assert_clean()
    return Measured(model, [r.size for r in requests], len(system), tools_bytes)


async def main(round_trips: int) -> str:
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    executor = DockerExecutionClient(app_label=f"mce-bench-{uuid.uuid4().hex[:6]}", pool_size=0)
    results = []
    try:
        for model, fake in (
            ("gemini-2.5-flash", g.FakeGemini()),
            ("openai/fake-model", o.FakeOpenAI()),
        ):
            with fake:
                results.append(await measure(model, fake, executor, round_trips))
    finally:
        executor.cleanup_all(remove_volumes=True)
    lines = [
        "# Model request sizes",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · the app's agent (its tools, skills, instruction) "
        "through ChatService against the fake APIs · real Docker · body bytes on the wire",
        "",
        "| model | first request (before) | system instruction chars | tool declarations "
        "bytes | per tool round trip |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for m in results:
        growth = [b - a for a, b in zip(m.sizes, m.sizes[1:], strict=False)]
        lines.append(
            f"| {m.model} | {m.sizes[0]:,} ({BEFORE[m.model]:,}) | {m.system_chars:,} | "
            f"{m.tools_bytes:,} | {', '.join(f'+{d:,}' for d in growth)} |"
        )
    lines += [
        "",
        f"Each round trip: the model calls `execute_bash` (`echo round-N`) and the app sends its "
        f"call and result back ({round_trips} in a row). Target: first request at most 8,192 B.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--round-trips", type=int, default=3)
    publish(asyncio.run(main(parser.parse_args().round_trips)), "model_requests")
