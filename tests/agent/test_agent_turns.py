"""Agent turns through the real ADK Runner, with a scripted model, against real Docker."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.events import (
    ErrorEvent,
    FilesUploaded,
    TextDelta,
    TextFinal,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
    TurnDone,
    UserMessage,
)
from executor import chat_key
from tests.agent.conftest import collect
from tests.support import wait_for
from tests.support.scripted_llm import FailingLlm, ScriptedLlm

pytestmark = pytest.mark.docker


def finished(events) -> list[ToolCallFinished]:
    return [e for e in events if isinstance(e, ToolCallFinished)]


async def test_tool_calls_land_in_the_calling_sessions_container(make_service):
    llm = ScriptedLlm(
        steps=[
            [("write_file", {"path": "mine.txt", "content": "only here"})],
            [
                (
                    "execute_bash",
                    {"command": "ls"},
                )
            ],
        ],
        final_text="ok",
    )
    service = await make_service(model=llm)
    first, second = await service.new_session("alice"), await service.new_session("alice")
    events_a = await collect(service.stream("alice", first, "write it"))
    llm.steps = [[("execute_bash", {"command": "ls"})]]
    events_b = await collect(service.stream("alice", second, "look"))
    assert finished(events_a)[0].response["status"] == "ok"
    assert "mine.txt" in finished(events_a)[1].response["stdout"]
    assert "mine.txt" not in finished(events_b)[0].response["stdout"]
    code, out, _ = await service.executor.execute_bash(chat_key("alice", first), "cat mine.txt")
    assert (code, out) == (0, "only here")


async def test_tool_error_comes_back_as_data_and_the_turn_goes_on(make_service):
    llm = ScriptedLlm(steps=[[("read_file", {"path": "missing.txt"})]], final_text="saw: {last}")
    service = await make_service(model=llm)
    session = await service.new_session("bob")
    events = await collect(service.stream("bob", session, "read it"))
    response = finished(events)[0].response
    assert response["status"] == "error"
    assert "missing.txt" in response["error"]
    assert "list_files" in response["hint"]
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    final = [e for e in events if isinstance(e, TextFinal)][-1].text
    assert final.startswith("saw: {'status': 'error'")
    assert events[-1] == TurnDone(stopped=False)


async def test_timeout_and_bad_arguments_are_explained_to_the_model(make_service):
    llm = ScriptedLlm(
        steps=[
            [("execute_bash", {"command": "sleep 5", "timeout": 1})],
            [("execute_bash", {"command": "true", "timeout": 0})],
        ]
    )
    service = await make_service(model=llm)
    session = await service.new_session("carol")
    timed_out, refused = finished(await collect(service.stream("carol", session, "go")))
    assert timed_out.response["exit_code"] == 124
    assert "timed out after 1 s" in timed_out.response["note"]
    assert refused.response["status"] == "error"
    assert "timeout" in refused.response["error"]


async def test_output_handed_to_the_model_is_capped_and_says_so(make_service):
    llm = ScriptedLlm(steps=[[("execute_bash", {"command": "seq 1 100000"})]])
    service = await make_service(model=llm)
    session = await service.new_session("dave")
    response = finished(await collect(service.stream("dave", session, "go")))[0].response
    assert len(response["stdout"]) < service.settings.tool_output_limit_chars + 200
    assert "characters cut from the middle" in response["stdout"]
    assert response["stdout"].startswith("1\n2\n")
    assert response["stdout"].endswith("100000\n")
    assert "shortened" in response["note"]


async def test_skill_is_in_context_loads_on_demand_and_its_script_runs(make_service):
    csv = b"day,sales\n1,10\n2,12\n3,15\n"
    llm = ScriptedLlm(
        steps=[
            [("load_skill", {"skill_name": "csv-summary"})],
            [
                (
                    "run_skill_script",
                    {
                        "skill_name": "csv-summary",
                        "file_path": "scripts/summarize.py",
                        "command": "python3 /skills/csv-summary/scripts/summarize.py "
                        "sales.csv --chart chart.png",
                    },
                )
            ],
        ],
    )
    service = await make_service(model=llm)
    session = await service.new_session("erin")
    events = await collect(service.stream("erin", session, "summarise", files=[("sales.csv", csv)]))
    assert FilesUploaded((("/workspace/sales.csv", len(csv)),)) in events
    system = str(llm.seen_requests[0].config.system_instruction)
    assert "csv-summary" in system
    assert "Summarise a CSV" in system
    assert "# CSV summary" not in system  # the body loads on demand
    assert "cannot run" not in system  # one story: skill scripts run in the sandbox
    loaded, ran = finished(events)
    assert "# CSV summary" in str(loaded.response)
    assert ran.response["exit_code"] == 0, ran.response
    assert "rows: 3" in ran.response["stdout"]
    png = await service.executor.download_file(chat_key("erin", session), "chart.png")
    assert png.startswith(b"\x89PNG")


async def test_offline_model_runs_bash_and_python_blocks(make_service):
    service = await make_service(model="offline")
    assert service.model.offline
    session = await service.new_session("frank")
    text = "```bash\necho from-bash > f.txt; cat f.txt\n```\n```python\nprint(sum(range(10)))\n```"
    events = await collect(service.stream("frank", session, text))
    outputs = [e.response["stdout"] for e in finished(events)]
    assert outputs == ["from-bash\n", "45\n"]
    reply = [e for e in events if isinstance(e, TextFinal)][-1].text
    assert "from-bash" in reply
    assert "45" in reply
    assert [e for e in events if isinstance(e, TextDelta)], "the reply streams"
    events = await collect(service.stream("frank", session, "$ ls"))
    assert "f.txt" in finished(events)[0].response["stdout"]
    help_reply = [
        e for e in await collect(service.stream("frank", session, "hi")) if isinstance(e, TextFinal)
    ]
    assert "offline model" in help_reply[-1].text
    assert "GOOGLE_API_KEY" in help_reply[-1].text


async def test_history_and_sandbox_survive_a_new_service_instance(
    make_service, tmp_path, app_label
):
    from executor import DockerExecutionClient

    data = tmp_path / "shared-data"
    first = await make_service(model="offline", data_dir=data)
    session = await first.new_session("gina")
    await collect(first.stream("gina", session, "$ echo persisted > p.txt && echo written"))
    restarted_executor = DockerExecutionClient(  # a "restarted app"
        app_label=app_label,
        pool_size=0,
        state_dir=first.executor.settings.state_dir,
        audit_log=first.executor.settings.audit_log,
    )
    import dataclasses

    from agent.service import ChatService

    second = ChatService(
        dataclasses.replace(first.settings), executor=restarted_executor, model="offline"
    )
    history = await second.history("gina", session)
    assert history[0] == UserMessage("$ echo persisted > p.txt && echo written")
    assert any(
        isinstance(e, ToolCallFinished) and e.response.get("stdout") == "written\n" for e in history
    )
    assert [s.title for s in await second.list_sessions("gina")] == [
        "echo persisted > p.txt && echo written"  # the title drops the "$ " of a command line
    ]
    events = await collect(second.stream("gina", session, "$ cat p.txt"))
    assert finished(events)[0].response["stdout"] == "persisted\n"
    await second.close(executor=False)


async def test_a_running_turn_can_be_stopped_and_its_command_dies(make_service, docker_client):
    command = "echo started; exec sleep 31"
    llm = ScriptedLlm(steps=[[("execute_bash", {"command": command, "timeout": 60})]])
    service = await make_service(model=llm)
    session = await service.new_session("hank")
    key = chat_key("hank", session)
    events = []
    seen_running = False

    def sleeping(container: str) -> bool:
        top = docker_client.api.top(container, ps_args="-eo pid,args")
        return any(row[-1] == "sleep 31" for row in top["Processes"] or [])

    async def consume():
        nonlocal seen_running
        async for event in service.stream("hank", session, "long job"):
            events.append(event)
            if isinstance(event, ToolOutput) and "started" in event.text:
                # The command really runs now (it printed, and its sleep is in the container):
                # only a Stop from here on proves that Stop kills it.
                container = (await service.executor.sandbox_info(key)).container_name
                seen_running = await asyncio.to_thread(sleeping, container)
                assert service.stop("hank", session)

    started = time.monotonic()
    await asyncio.wait_for(consume(), timeout=20)
    assert seen_running
    assert time.monotonic() - started < 15  # not the 31 s the command would have taken
    assert events[-1] == TurnDone(stopped=True)
    container = (await service.executor.sandbox_info(key)).container_name
    await wait_for(lambda: not sleeping(container), timeout=5, what="the command to be killed")


async def test_a_failing_model_gives_a_readable_error_and_the_chat_goes_on(make_service):
    service = await make_service(model=FailingLlm())
    session = await service.new_session("ivy")
    events = await collect(service.stream("ivy", session, "hello"))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1  # said once
    assert "API key" in errors[0].message
    assert "GOOGLE_API_KEY" in errors[0].message  # what to do
    assert "Traceback" not in errors[0].message
    assert events[-1] == TurnDone(stopped=False)
    assert not service.is_running("ivy", session)


async def test_a_rate_limit_reaches_the_model_in_words(make_executor, tmp_path):
    import dataclasses

    from agent.service import ChatService
    from settings import load_settings

    executor = make_executor(max_executions_per_minute=1, max_executions_burst=1, limit_wait_s=0.1)
    llm = ScriptedLlm(
        steps=[[("execute_bash", {"command": "true"})], [("execute_bash", {"command": "true"})]]
    )
    settings = dataclasses.replace(load_settings({}), data_dir=tmp_path / "limits")
    service = ChatService(settings, executor=executor, model=llm)
    session = await service.new_session("greta")
    first, second = finished(await collect(service.stream("greta", session, "twice")))
    assert first.response["exit_code"] == 0
    assert second.response["status"] == "error"
    assert "executions per minute" in second.response["error"]
    assert "wait" in second.response["hint"]
    await service.close(executor=False)


async def test_a_long_commands_output_reaches_the_chat_while_it_runs(make_service):
    from agent.events import ToolOutput

    llm = ScriptedLlm(steps=[[("execute_bash", {"command": "echo early; sleep 2; echo late"})]])
    service = await make_service(model=llm)
    session = await service.new_session("ines")
    seen = []
    started = time.monotonic()
    async for event in service.stream("ines", session, "go"):
        seen.append((time.monotonic() - started, event))
    live = [(t, e) for t, e in seen if isinstance(e, ToolOutput)]
    done_at = next(t for t, e in seen if isinstance(e, ToolCallFinished))
    assert live
    assert "early" in live[0][1].text
    assert live[0][0] < done_at - 1.0  # shown well before the command finished
    call_id = next(e.call_id for _, e in seen if isinstance(e, ToolCallStarted))
    assert live[0][1].call_id == call_id


async def test_offline_python_keeps_data_between_messages(make_service):
    service = await make_service(model="offline")
    session = await service.new_session("jack")
    await collect(
        service.stream(
            "jack",
            session,
            "```python\nimport pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\n```",
        )
    )
    events = await collect(service.stream("jack", session, "```python\ndf.a.sum()\n```"))
    assert finished(events)[0].name == "run_python"
    assert finished(events)[0].response["stdout"] == "6\n"
    events = await collect(
        service.stream(
            "jack",
            session,
            "```python\nimport matplotlib.pyplot as plt\ndf.plot(); plt.savefig('a.png')\n```",
        )
    )
    assert finished(events)[0].response["exit_code"] == 0
