"""Skills are mounted read-only at /skills and their scripts run inside the session's container."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker

CSV = "date,sales,visits\n2024-01-01,10,100\n2024-01-02,12,130\n2024-01-03,,90\n"


async def test_csv_summary_skill_script_runs_in_the_sandbox(executor, user_id):
    await executor.write_file(user_id, "data.csv", CSV)
    code, out, err = await executor.execute_bash(
        user_id,
        "python3 /skills/csv-summary/scripts/summarize.py data.csv --chart chart.png",
        timeout=60,
    )
    assert code == 0, err
    assert "rows: 3" in out
    assert "sales: float64, missing 1" in out
    png = await executor.download_file(user_id, "chart.png")
    assert png.startswith(b"\x89PNG")
