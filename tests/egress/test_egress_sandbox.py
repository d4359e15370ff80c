"""Controlled egress for real: sandboxes with no network interface reach allowed hosts through
the proxy on their own loopback, carried over the runner's channel to the host, which decides.

Only the host's loopback is ever contacted: a local package index (wheels built here) stands in
for PyPI, allowed by a literal `127.0.0.1:PORT` entry; the sandbox reaches it through its proxy
explicitly (`--proxy "$HTTP_PROXY"`, NO_PROXY cleared), since its own 127.0.0.1 is not the host's.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time

import pytest

from tests.egress.support import (
    EchoPeer,
    FloodPeer,
    IndexServer,
    SilentPeer,
    build_wheel,
    make_tls,
    proxy_script,
    write_index,
)

pytestmark = [pytest.mark.docker, pytest.mark.egress]

# pip as a user types it, pointed at the test index through the sandbox's proxy.
PIP = (
    'NO_PROXY= no_proxy= pip install --proxy "$HTTP_PROXY" --retries 0 --timeout 20 '
    "--index-url {index} {packages}"
)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("index")
    wheels = folder / "wheels"
    wheels.mkdir()
    made = [
        build_wheel(wheels, "tinypkg", "1.0", source="VALUE = 42\n"),
        build_wheel(wheels, "bigpkg", "1.0", payload_bytes=30 << 20),
        build_wheel(wheels, "needs-tiny", "2.0", requires=["tinypkg"]),
    ]
    write_index(folder / "site", made)
    with IndexServer(folder / "site") as server:
        yield server


@pytest.fixture
def egress(make_executor, index):
    """An executor allowed to reach only the test index."""
    return make_executor(egress_allow=f"127.0.0.1:{index.port}")


def pip(index: IndexServer, *packages: str) -> str:
    return PIP.format(index=index.index_url, packages=" ".join(packages))


async def test_pip_installs_into_the_workspace_and_the_next_command_and_kernel_import_it(
    egress, index, user_id
):
    await egress.run_python(user_id, "import sys; started = True")  # a kernel from before
    installed = await egress.run(user_id, pip(index, "needs-tiny"), timeout=120)
    assert installed.exit_code == 0, installed.stderr + installed.stdout
    assert "Successfully installed" in installed.stdout
    after = await egress.run(user_id, "python3 -c 'import tinypkg; print(tinypkg.VALUE)'")
    assert after.stdout == "42\n"
    kernel = await egress.run_python(user_id, "import tinypkg, needs_tiny\nstarted, tinypkg.VALUE")
    assert kernel.stdout == "(True, 42)\n", kernel.stderr  # same interpreter, no reset
    where = await egress.run(user_id, "ls /workspace/.local/lib/python3*/site-packages")
    assert "tinypkg" in where.stdout
    allowed = [r for r in installed.egress if r.allowed]
    assert allowed
    assert all(r.port == index.port for r in allowed)


async def test_a_30_mb_wheel_installs_despite_the_small_home(egress, index, user_id):
    result = await egress.run(user_id, pip(index, "bigpkg"), timeout=180)
    assert result.exit_code == 0, result.stderr[-2000:]
    check = "import bigpkg, os; print(os.path.getsize(bigpkg.__path__[0] + '/payload.bin'))"
    size = await egress.run(user_id, f"python3 -c {shlex.quote(check)}")
    assert size.stdout.strip() == str(30 << 20)


async def test_a_host_not_in_the_list_is_refused_with_the_reason_and_sees_nothing(
    egress, index, tmp_path, user_id
):
    write_index(tmp_path / "other", [build_wheel(tmp_path, "otherpkg")])
    with IndexServer(tmp_path / "other") as other:
        result = await egress.run(
            user_id, pip(other, "otherpkg").replace(index.index_url, other.index_url), timeout=60
        )
        assert result.exit_code != 0
        assert other.connections == 0  # never reached
    text = result.stdout + result.stderr
    assert f"127.0.0.1:{other.port}" in text
    assert "EXECUTOR_EGRESS_ALLOW" in text
    assert [(r.port, r.allowed) for r in result.egress_refused] == [(other.port, False)]


async def test_https_through_connect_works_to_an_allowed_server_and_not_to_another(
    make_executor, tmp_path, user_id
):
    tls = make_tls(tmp_path / "tls")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "hello.txt").write_text("over tls\n")
    with (
        IndexServer(tmp_path / "site", tls=tls) as allowed,
        IndexServer(tmp_path / "site", tls=tls) as refused,
    ):
        client = make_executor(egress_allow=f"127.0.0.1:{allowed.port}")
        await client.upload_file(user_id, "ca.pem", tls.ca.read_bytes())
        fetch = (
            "import os, ssl, sys, urllib.request\n"
            "proxy = urllib.request.ProxyHandler({'https': os.environ['HTTPS_PROXY']})\n"
            "context = ssl.create_default_context(cafile='ca.pem')\n"
            "tls = urllib.request.HTTPSHandler(context=context)\n"
            "opener = urllib.request.build_opener(proxy, tls)\n"
            "for port in sys.argv[1:]:\n"
            "    try:\n"
            "        url = f'https://127.0.0.1:{port}/hello.txt'\n"
            "        print(opener.open(url, timeout=20).read().decode(), end='')\n"
            "    except OSError as e:\n"
            "        print('failed:', e)\n"
        )
        await client.write_file(user_id, "fetch.py", fetch)
        result = await client.run(
            user_id, f"NO_PROXY= no_proxy= python3 fetch.py {allowed.port} {refused.port}"
        )
        assert refused.connections == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "over tls", result.stderr
    assert lines[1].startswith("failed:")
    assert "403" in lines[1]


@pytest.fixture
def app_port():
    """A server standing in for the app's own port on the host: it must never be reached."""
    with EchoPeer() as peer:
        yield peer


async def test_loopback_in_every_spelling_is_refused_plain_and_connect(egress, app_port, user_id):
    port = app_port.port
    targets = ["127.0.0.1", "localhost", "[::1]", "2130706433", "0177.0.0.1", "127.1"]
    probe = (
        "answers = {}\n"
        "for target in sys.argv[2:]:\n"
        "    for form in ('CONNECT {t}:{p} HTTP/1.1\\r\\nHost: {t}\\r\\n\\r\\n',\n"
        "                 'GET http://{t}:{p}/ HTTP/1.1\\r\\nHost: {t}\\r\\n\\r\\n'):\n"
        "        s = proxy()\n"
        "        s.sendall(form.format(t=target, p=sys.argv[1]).encode())\n"
        "        answers[form[:4] + ' ' + target] = s.recv(200).split(b'\\r\\n')[0].decode()\n"
        "print(json.dumps(answers))\n"
    )
    await egress.write_file(user_id, "probe.py", proxy_script(probe))
    result = await egress.run(user_id, f"python3 probe.py {port} {' '.join(targets)}")
    answers = json.loads(result.stdout)
    assert len(answers) == 2 * len(targets)
    for form, status in answers.items():
        assert status.startswith("HTTP/1.1 403"), (form, status)
    assert app_port.accepted == 0


async def test_a_name_that_resolves_to_loopback_is_refused_even_when_listed(
    make_executor, app_port, user_id
):
    client = make_executor(egress_allow=f"localhost:{app_port.port}")
    script = (
        "s = proxy()\n"
        "s.sendall(f'CONNECT localhost:{sys.argv[1]} HTTP/1.1\\r\\n\\r\\n'.encode())\n"
        "print(s.recv(300).split(b'\\r\\n')[0].decode())\n"
    )
    await client.write_file(user_id, "probe.py", proxy_script(script))
    result = await client.run(user_id, f"python3 probe.py {app_port.port}")
    assert result.stdout.startswith("HTTP/1.1 403"), result.stdout
    assert "loopback" in result.stdout
    assert app_port.accepted == 0


async def test_two_hundred_connections_at_once_hit_the_limit_and_nothing_else_stalls(
    make_executor, user_id
):
    with EchoPeer() as peer:
        client = make_executor(egress_allow=f"127.0.0.1:{peer.port}", egress_max_connections=32)
        script = (
            "import threading, collections\n"
            "seen = collections.Counter(); hold = []; lock = threading.Lock()\n"
            "def one():\n"
            "    s = proxy()\n"
            "    s.sendall(f'CONNECT 127.0.0.1:{sys.argv[1]} HTTP/1.1\\r\\n\\r\\n'.encode())\n"
            "    line = s.recv(100).split(b' ')[1].decode()\n"
            "    with lock: seen[line] += 1; hold.append(s)\n"
            "threads = [threading.Thread(target=one) for _ in range(200)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print(dict(seen), flush=True)\n"
        )
        await client.write_file(user_id, "crowd.py", proxy_script(script))
        crowd = asyncio.ensure_future(client.run(user_id, f"python3 crowd.py {peer.port}"))
        started = time.monotonic()
        other = await client.run(user_id + "-other", "echo unaffected")
        assert other.stdout == "unaffected\n"
        assert time.monotonic() - started < 20
        result = await crowd
    counts = eval(result.stdout)
    assert counts.get("200", 0) <= 32
    assert counts.get("200", 0) >= 1
    assert sum(counts.values()) == 200
    assert counts.get("429", 0) >= 200 - 32 - 8  # the rest refused, not hung


async def test_a_peer_sending_a_gigabyte_is_cut_at_the_connection_cap(make_executor, user_id):
    with FloodPeer(1 << 30) as peer:
        client = make_executor(
            egress_allow=f"127.0.0.1:{peer.port}", egress_max_connection_bytes=8 << 20
        )
        script = (
            "s = proxy()\n"
            "s.sendall(f'CONNECT 127.0.0.1:{sys.argv[1]} HTTP/1.1\\r\\n\\r\\n'.encode())\n"
            "total = 0\n"
            "while True:\n"
            "    chunk = s.recv(1 << 16)\n"
            "    if not chunk: break\n"
            "    total += len(chunk)\n"
            "print(total)\n"
        )
        await client.write_file(user_id, "flood.py", proxy_script(script))
        started = time.monotonic()
        result = await client.run(user_id, f"python3 flood.py {peer.port}", timeout=120)
    received = int(result.stdout.split()[-1])
    assert received <= (8 << 20) + 4096  # the proxy's 200 line and the cap
    assert received >= 4 << 20
    assert time.monotonic() - started < 60
    assert peer.sent < 256 << 20  # it was stopped, not drained


async def test_a_peer_that_never_answers_is_closed_at_the_idle_timeout(make_executor, user_id):
    with SilentPeer() as peer:
        client = make_executor(egress_allow=f"127.0.0.1:{peer.port}", egress_idle_timeout_s=2)
        script = (
            "s = proxy()\n"
            "s.sendall(f'CONNECT 127.0.0.1:{sys.argv[1]} HTTP/1.1\\r\\n\\r\\n'.encode())\n"
            "print(s.recv(100).split(b'\\r\\n')[0].decode(), flush=True)\n"
            "t = time.monotonic(); rest = s.recv(100)\n"
            "print(repr(rest), round(time.monotonic() - t))\n"
        )
        await client.write_file(user_id, "silent.py", proxy_script(script))
        result = await client.run(user_id, f"python3 silent.py {peer.port}", timeout=30)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("HTTP/1.1 200"), result.stderr
    rest, seconds = lines[1].rsplit(" ", 1)
    assert rest == "b''"  # closed
    assert 1 <= int(seconds) <= 10


async def test_a_malformed_request_line_gets_a_400(egress, user_id):
    script = (
        "s = proxy()\n"
        "s.sendall(b'\\x00\\x01 garbage\\r\\n\\r\\n')\n"
        "print(s.recv(200).split(b'\\r\\n')[0].decode())\n"
    )
    result = await egress.run(user_id, f"python3 -c {shlex.quote(proxy_script(script))}")
    assert result.stdout.startswith("HTTP/1.1 400")


async def test_the_sandbox_still_has_only_loopback_and_says_where_its_proxy_is(egress, user_id):
    result = await egress.run(user_id, "ls /sys/class/net; env | grep -i _proxy= | sort")
    lines = result.stdout.split()
    assert lines[0] == "lo"
    assert any(line.startswith("HTTP_PROXY=http://127.0.0.1:") for line in lines)
    assert any(line.startswith("NO_PROXY=") for line in lines)


async def test_with_egress_off_there_is_no_proxy_at_all(make_executor, user_id):
    client = make_executor(egress_allow="")
    result = await client.run(user_id, "env | grep -ci _proxy= || true")
    assert result.stdout.strip() == "0"
