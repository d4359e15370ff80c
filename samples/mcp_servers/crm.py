"""A small CRM as an MCP server (stdio), for the code-mode demo and benchmark.

Offline and without credentials. Records live in a JSON file: `CRM_DATA_FILE` (default: a file in
the system's temp directory), created with three sample records on first use. Run it as:

    CRM_DATA_FILE=data/crm.json .venv/bin/python samples/mcp_servers/crm.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from fastmcp import FastMCP

mcp = FastMCP("crm", instructions="Customer records: read one by id, or replace its notes.")

_SEED = {
    "acme-001": {"name": "Dana Whitfield", "company": "Acme Corp", "notes": ""},
    "globex-002": {"name": "Hank Scorpio", "company": "Globex", "notes": "Prefers calls."},
    "initech-003": {"name": "Bill Lumbergh", "company": "Initech", "notes": ""},
}


def _file() -> Path:
    default = Path(tempfile.gettempdir()) / "mcp-code-executor-crm.json"
    return Path(os.environ.get("CRM_DATA_FILE") or default)


def _load() -> dict[str, dict]:
    try:
        return json.loads(_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {key: dict(value, updated_at=0.0) for key, value in _SEED.items()}


def _save(records: dict[str, dict]) -> None:
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1), encoding="utf-8")
    tmp.replace(path)


def _record(records: dict[str, dict], record_id: str) -> dict:
    if record_id not in records:
        raise ValueError(f"no record {record_id!r}; ids: {', '.join(records)}")
    return {"id": record_id, **records[record_id]}


@mcp.tool
def get_record(record_id: str) -> dict:
    """One customer record: id, name, company, notes and when it was last updated.

    Args:
        record_id: e.g. "acme-001".
    """
    return _record(_load(), record_id)


@mcp.tool
def update_record(record_id: str, notes: str) -> dict:
    """Replace a record's notes; returns the record's id, the notes' size and the time.

    Args:
        record_id: e.g. "acme-001".
        notes: the new notes (any text, e.g. a meeting transcript).
    """
    records = _load()
    _record(records, record_id)
    records[record_id]["notes"] = notes
    records[record_id]["updated_at"] = time.time()
    _save(records)
    return {
        "id": record_id,
        "notes_chars": len(notes),
        "updated_at": records[record_id]["updated_at"],
    }


if __name__ == "__main__":
    mcp.run(show_banner=False)
