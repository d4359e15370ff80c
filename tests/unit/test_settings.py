"""Settings: environment parsing, clear errors, and .env.example listing every variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings import PROJECT_ROOT, ConfigError, env_variables, load_settings


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
