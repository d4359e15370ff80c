"""A deliberately badly behaved MCP server over stdio, written without an SDK so every byte it
sends is under the test's control. Speaks the handshake era (answers `server/discover` with
method-not-found, so clients fall back to `initialize`).

Tools: echo(text), pid(), slow(seconds) (answered from a thread: calls overlap), hang() (the
server stops answering anything), crash() (exits mid-call), flood(count) (that many log and
progress notifications, then the answer), big(megabytes) (one answer that large), ask(kind)
(sends the client a sampling / elicitation / roots request and returns its answer),
add_tool() (lists one more tool and says so with notifications/tools/list_changed).

FLOOD_BACKGROUND=1 floods notifications from a thread for the server's whole life.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

_out = sys.stdout.buffer
_lock = threading.Lock()
_answers: dict[str, dict] = {}
_answered = threading.Condition()
_extra_tools: list[dict] = []


def send(message: dict) -> None:
    data = json.dumps(message).encode() + b"\n"
    with _lock:
        _out.write(data)
        _out.flush()


def result(request_id, value: dict) -> None:
    send({"jsonrpc": "2.0", "id": request_id, "result": value})


def text(request_id, body: str, is_error: bool = False) -> None:
    result(request_id, {"content": [{"type": "text", "text": body}], "isError": is_error})


def tool(name: str, properties: dict | None = None, required: list | None = None) -> dict:
    schema = {"type": "object", "properties": properties or {}}
    if required:
        schema["required"] = required
    return {"name": name, "description": f"The hostile {name}.", "inputSchema": schema}


TOOLS = [
    tool("echo", {"text": {"type": "string"}}, ["text"]),
    tool("pid"),
    tool("slow", {"seconds": {"type": "number"}}, ["seconds"]),
    tool("hang"),
    tool("crash"),
    tool("flood", {"count": {"type": "integer"}}, ["count"]),
    tool("big", {"megabytes": {"type": "number"}}, ["megabytes"]),
    tool(
        "ask", {"kind": {"type": "string", "enum": ["sampling", "elicitation", "roots"]}}, ["kind"]
    ),
    tool("add_tool"),
    tool("fail", {"message": {"type": "string"}}, ["message"]),
]

_ASK = {
    "sampling": (
        "sampling/createMessage",
        {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 5},
    ),
    "elicitation": (
        "elicitation/create",
        {"message": "your name?", "requestedSchema": {"type": "object", "properties": {}}},
    ),
    "roots": ("roots/list", {}),
}


def notification(i: int) -> dict:
    if i % 2:
        return {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": f"log line {i} " + "x" * 200},
        }
    return {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": "nobody", "progress": i},
    }


def ask(request_id, kind: str) -> None:
    method, params = _ASK[kind]
    ask_id = f"ask-{request_id}"
    send({"jsonrpc": "2.0", "id": ask_id, "method": method, "params": params})
    with _answered:
        _answered.wait_for(lambda: ask_id in _answers, timeout=10)
        answer = _answers.pop(ask_id, {"error": {"message": "no answer"}})
    text(request_id, json.dumps(answer))


def big(request_id, megabytes: float) -> None:
    body = "y" * int(megabytes * 1_000_000)
    head = json.dumps({"jsonrpc": "2.0", "id": request_id}).rstrip("}")
    with _lock:
        _out.write(f'{head}, "result": {{"content": [{{"type": "text", "text": "'.encode())
        for start in range(0, len(body), 1 << 20):
            _out.write(body[start : start + (1 << 20)].encode())
        _out.write(b'"}], "isError": false}}\n')
        _out.flush()


def call(request_id, name: str, args: dict) -> None:
    if name == "echo":
        text(request_id, args["text"])
    elif name == "pid":
        text(request_id, str(os.getpid()))
    elif name == "slow":
        threading.Thread(
            target=lambda: (time.sleep(args["seconds"]), text(request_id, "slept")), daemon=True
        ).start()
    elif name == "hang":
        time.sleep(3600)  # the whole server stops answering
    elif name == "crash":
        sys.stderr.write("about to crash\n")
        sys.stderr.flush()
        os._exit(3)
    elif name == "flood":
        for i in range(args["count"]):
            send(notification(i))
        text(request_id, f"sent {args['count']} notifications")
    elif name == "big":
        big(request_id, args["megabytes"])
    elif name == "ask":
        threading.Thread(target=ask, args=(request_id, args["kind"]), daemon=True).start()
    elif name == "add_tool":
        _extra_tools.append(tool(f"extra_{len(_extra_tools) + 1}"))
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        text(request_id, "added")
    elif name == "fail":
        text(request_id, args["message"], is_error=True)
    else:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": "no tool"}})


def background_flood() -> None:
    i = 0
    while True:
        send(notification(i))
        i += 1


def main() -> None:
    sys.stderr.write(f"hostile server {os.getpid()} starting\n")
    sys.stderr.flush()
    if os.environ.get("FLOOD_BACKGROUND") == "1":
        threading.Thread(target=background_flood, daemon=True).start()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if method is None:  # an answer to one of our requests
            with _answered:
                _answers[str(request_id)] = message
                _answered.notify_all()
        elif method == "initialize":
            result(
                request_id,
                {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {"listChanged": True}},
                    "serverInfo": {"name": "hostile", "version": "1"},
                    "instructions": "Misbehaves on request.",
                },
            )
        elif method == "tools/list":
            result(request_id, {"tools": TOOLS + _extra_tools})
        elif method == "tools/call":
            params = message["params"]
            call(request_id, params["name"], params.get("arguments") or {})
        elif request_id is not None:
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": -32601, "message": f"method {method} not found"},
                }
            )


if __name__ == "__main__":
    main()
