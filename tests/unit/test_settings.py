"""Settings: environment parsing, clear errors, and .env.example listing every variable."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from settings import PROJECT_ROOT, ConfigError, check_values, env_variables, load_settings


def test_defaults_are_the_hardened_ones():
    spec = load_settings({}).executor
    assert spec.network_mode == "none"
    assert spec.memory_limit_bytes == 1 << 30
    assert spec.output_limit_bytes == 1 << 20


def test_sizes_and_numbers_are_parsed_from_the_environment():
    settings = load_settings(
        {
            "EXECUTOR_MEMORY_LIMIT_BYTES": "512m",
            "EXECUTOR_CPU_LIMIT": "0.5",
            "EXECUTOR_PIDS_LIMIT": "64",
            "APP_DATA_DIR": "/tmp/x",
        }
    )
    assert settings.executor.memory_limit_bytes == 512 << 20
    assert settings.executor.cpu_limit == 0.5
    assert settings.executor.pids_limit == 64
    assert settings.data_dir == Path("/tmp/x")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXECUTOR_MEMORY_LIMIT_BYTES", "lots"),
        ("EXECUTOR_CPU_LIMIT", "nan"),
        ("EXECUTOR_PIDS_LIMIT", "1.5"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


def test_env_example_lists_every_variable_with_its_default():
    text = (PROJECT_ROOT / ".env.example").read_text()
    listed = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    expected = env_variables()
    assert set(expected) <= set(listed), f"missing from .env.example: {set(expected) - set(listed)}"
    for name, default in expected.items():
        if isinstance(default, Path):
            continue
        parsed = load_settings({name: listed[name]}) if listed[name] else None
        if parsed is not None:
            section = parsed.executor if name.startswith("EXECUTOR_") else parsed
            field = name.split("_", 1)[1].lower()
            assert getattr(section, field) == default, (
                f"{name} in .env.example differs from the default"
            )


def test_image_hash_changes_with_any_input_file(tmp_path):
    from executor.image import inputs_hash

    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "base-packages.txt").write_text("python3\n")
    first = inputs_hash(tmp_path)
    assert inputs_hash(tmp_path) == first
    (tmp_path / "base-packages.txt").write_text("python3\nprocps\n")
    assert inputs_hash(tmp_path) != first


# -- every setting checked when made, every problem reported at once ------------------------


@pytest.mark.parametrize(
    ("environ", "variable", "allowed"),
    [
        # closed choices (Literal): a typo is refused, never a silent fallback
        ({"EXECUTOR_ENGINE": "k8s"}, "EXECUTOR_ENGINE='k8s'", "one of docker, kubernetes"),
        ({"EXECUTOR_WORKSPACE_QUOTA_MODE": "lop"}, "EXECUTOR_WORKSPACE_QUOTA_MODE", "auto, loop"),
        ({"APP_AGENT_TOOLS": "MCP"}, "APP_AGENT_TOOLS='MCP'", "one of direct, mcp"),
        ({"EXECUTOR_K8S_IMAGE_PULL_POLICY": "always"}, "PULL_POLICY", "IfNotPresent, Always"),
        # sizes, and their sum against the memory limit
        ({"EXECUTOR_MAX_FILE_BYTES": "lots"}, "EXECUTOR_MAX_FILE_BYTES='lots'", "512k"),
        ({"EXECUTOR_TMP_SIZE_BYTES": "1g"}, "EXECUTOR_TMP_SIZE_BYTES='1g'", "more than half"),
        # numbers in range
        ({"EXECUTOR_PIDS_LIMIT": "8"}, "EXECUTOR_PIDS_LIMIT='8'", "at least 16"),
        ({"APP_PORT": "70000"}, "APP_PORT='70000'", "from 1 to 65535"),
        ({"EXECUTOR_IDLE_TIMEOUT_S": "-5"}, "EXECUTOR_IDLE_TIMEOUT_S='-5'", "above 0"),
        ({"EXECUTOR_POOL_SIZE": "-1"}, "EXECUTOR_POOL_SIZE='-1'", "at least 0"),
        ({"EXECUTOR_POOL_SIZE": "8", "EXECUTOR_POOL_MAX_SIZE": "4"}, "POOL_MAX_SIZE", "floor"),
        ({"EXECUTOR_CPU_LIMIT": "inf"}, "EXECUTOR_CPU_LIMIT='inf'", "a finite number"),
        # labels and names
        ({"EXECUTOR_APP_LABEL": "My App"}, "EXECUTOR_APP_LABEL='My App'", "label value"),
        ({"EXECUTOR_APP_LABEL": "app-"}, "EXECUTOR_APP_LABEL='app-'", "ending with a letter"),
        ({"EXECUTOR_K8S_NAMESPACE": "Team_A"}, "EXECUTOR_K8S_NAMESPACE", "namespace"),
        # other formats
        ({"APP_USE_RUNNER": "x", "EXECUTOR_USE_RUNNER": "maybe"}, "USE_RUNNER='maybe'", "true"),
        ({"APP_AUTH": "alice"}, "APP_AUTH='alice'", "user:password pairs"),
        ({"APP_TRUSTED_PROXIES": "my-proxy"}, "APP_TRUSTED_PROXIES", "IP addresses"),
        ({"APP_PUBLIC_URL": "chat.example.org"}, "APP_PUBLIC_URL", "http:// or https://"),
    ],
)
def test_each_kind_of_bad_value_is_refused_naming_variable_value_and_what_is_allowed(
    environ, variable, allowed
):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    message = str(caught.value)
    assert variable in message
    assert allowed in message
    assert "see .env.example" in message


def test_every_problem_is_reported_together():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "EXECUTOR_ENGINE": "k8s",
                "EXECUTOR_TMP_SIZE_BYTES": "1g",
                "EXECUTOR_PIDS_LIMIT": "many",
                "APP_AGENT_TOOLS": "MCP",
                "APP_PORT": "0",
            }
        )
    problems = caught.value.problems
    assert {p.variable.split(" + ")[0] for p in problems} == {
        "EXECUTOR_ENGINE",
        "EXECUTOR_TMP_SIZE_BYTES",
        "EXECUTOR_PIDS_LIMIT",
        "APP_AGENT_TOOLS",
        "APP_PORT",
    }
    assert str(caught.value).startswith("5 settings cannot be used")


def test_values_given_in_code_are_checked_the_same_way(tmp_path):
    from executor import DockerExecutionClient
    from settings import ExecutorSettings

    with pytest.raises(ConfigError, match="EXECUTOR_ENGINE='k8s'"):
        ExecutorSettings(engine="k8s")
    with pytest.raises(ConfigError) as caught:
        DockerExecutionClient(
            state_dir=tmp_path, pids_limit="64", tmp_size_bytes=1 << 30, memroy_limit_bytes=1
        )
    message = str(caught.value)
    assert "EXECUTOR_PIDS_LIMIT='64' cannot be used: expected a whole number" in message
    assert "memroy_limit_bytes" in message  # an unknown keyword, named
    with pytest.raises(ConfigError, match="EXECUTOR_WORKSPACE_QUOTA_MODE"):
        DockerExecutionClient(state_dir=tmp_path, workspace_quota_mode="lop")
    assert not list(tmp_path.iterdir())  # refused before anything was made
    assert ExecutorSettings(state_dir=str(tmp_path)).state_dir == tmp_path  # str -> Path


def test_an_engine_built_without_settings_refuses_an_unknown_choice_too():
    from executor.engines import make_engine
    from executor.engines.docker import DockerEngine

    with pytest.raises(ConfigError, match="EXECUTOR_ENGINE='k8s'"):
        make_engine("k8s")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="EXECUTOR_WORKSPACE_QUOTA_MODE='lop'"):
        DockerEngine(quota_mode="lop")  # type: ignore[arg-type]


def test_a_new_field_is_checked_by_its_type_alone():
    """The mechanism is general: a Literal field or a number needs no plumbing of its own."""

    @dataclasses.dataclass(frozen=True)
    class Extra:
        _PREFIX: ClassVar[str] = "APP_"
        _RULES: ClassVar[tuple] = ()
        code_mode: Literal["off", "on"] = "off"
        egress_rate: float = 1.0

    problems = check_values(Extra, {"code_mode": "yes", "egress_rate": -1.0})
    assert [str(p) for p in problems] == [
        "APP_CODE_MODE='yes' cannot be used: expected one of off, on",
        "APP_EGRESS_RATE=-1.0 cannot be used: expected a number of at least 0",
    ]
