"""Agent overhead per turn: turn time minus tool time (scripted model, real Runner and Docker).

    .venv/bin/python bench/agent_overhead.py [--turns 50]

Each turn: the model calls execute_bash("true") once, then answers. Tool time is measured inside
the tool (around the executor call); the rest is ADK, the session store (SQLite, as the app runs)
and our event conversion. Saves bench/results/agent_overhead.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.events import ToolCallFinished
from agent.service import ChatService
from bench._common import pct, publish
from executor import DockerExecutionClient
from settings import load_settings
from tests.support.scripted_llm import ScriptedLlm


async def main(turns: int) -> str:
    logging.basicConfig(level=logging.WARNING)
    executor = DockerExecutionClient(app_label=f"mce-bench-{uuid.uuid4().hex[:6]}")
    llm = ScriptedLlm(steps=[[("execute_bash", {"command": "true"})]], final_text="done")
    with tempfile.TemporaryDirectory() as data:
        settings = dataclasses.replace(load_settings(), data_dir=Path(data))
        service = ChatService(settings, executor=executor, model=llm)
        session = await service.new_session("bench")
        overheads, totals, tools = [], [], []
        try:
            for i in range(turns + 3):
                started = time.perf_counter()
                tool_time = 0.0
                async for event in service.stream("bench", session, f"turn {i}"):
                    if isinstance(event, ToolCallFinished):
                        tool_time = event.response["duration_s"]
                total = time.perf_counter() - started
                if i >= 3:  # warm-up: container start, first SQLite writes
                    totals.append(total)
                    tools.append(tool_time)
                    overheads.append(total - tool_time)
        finally:
            await service.runner.close()
            executor.cleanup_all(remove_volumes=True)
    rows = [
        ("whole turn", totals),
        ("tool (execute_bash true)", tools),
        ("agent overhead (turn - tool)", overheads),
    ]
    lines = [
        "# Agent overhead per turn",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · scripted model, real ADK Runner, SQLite sessions, "
        f"real Docker · {turns} turns (session history grows each turn)",
        "",
        "| measure | p50 ms | p95 ms | mean ms |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {name} | {pct(s, 0.5) * 1000:.1f} | {pct(s, 0.95) * 1000:.1f} | "
            f"{statistics.mean(s) * 1000:.1f} |"
            for name, s in rows
        ],
        "",
        "Target: agent overhead p50 at most 50 ms.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=50)
    publish(asyncio.run(main(parser.parse_args().turns)), "agent_overhead")
