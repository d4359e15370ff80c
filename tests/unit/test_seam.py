"""Nothing above the engine seam imports docker or kubernetes (executor/engines/base.py).

A subprocess makes both SDKs unimportable (a sys.meta_path blocker) and imports every module of
executor, agent, mcp_server and frontend. Only the modules listed below may need an SDK: the
engines themselves and the image build tool. A new module that imports docker above the seam
fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from settings import PROJECT_ROOT

# Below the seam: the engines and the Docker image build tool.
NEEDS_AN_SDK = {
    "executor.engines._docker_hardening",
    "executor.engines._docker_io",
    "executor.engines._k8s_api",
    "executor.engines._k8s_exec",
    "executor.engines.docker",
    "executor.engines.kubernetes",
    "executor.image",
}
# Code that runs inside the sandbox: never imported by the host (sent as source; importing one
# may run it), and __main__ modules (which serve).
NOT_IMPORTED = {
    f"executor.sandbox_side.{p.stem}"
    for p in (PROJECT_ROOT / "executor" / "sandbox_side").glob("*.py")
    if p.stem not in ("__init__", "protocol")
}

PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"docker", "kubernetes"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    skip = set(json.loads(sys.argv[1]))
    failed = {}
    for package in ["executor", "agent", "mcp_server", "frontend", "code_mode", "tool_surface"]:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if info.name in skip or info.name.endswith(".__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                failed[info.name] = str(exc)
    sdks = sorted(m for m in sys.modules if m.split(".")[0] in {"docker", "kubernetes"})
    print(json.dumps({"failed": failed, "sdks": sdks}))
    """
)


def test_executor_and_the_app_import_without_docker_or_kubernetes():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(NOT_IMPORTED))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    above_the_seam = {k: v for k, v in report["failed"].items() if k not in NEEDS_AN_SDK}
    assert above_the_seam == {}, "these import an SDK above the engine seam"
    assert report["sdks"] == []
    assert set(report["failed"]) == NEEDS_AN_SDK  # the list above is exact, not a blanket pass
