"""A small document store as an MCP server (stdio), for the code-mode demo and benchmark.

Offline and without credentials: three documents held in memory, one of them the transcript of a
meeting with Acme Corp (about 50 kB). Run it as a stdio server:

    .venv/bin/python samples/mcp_servers/docs.py
"""

from __future__ import annotations

from fastmcp import FastMCP

mcp = FastMCP(
    "docs",
    instructions="A document store: list the documents, fetch one by id, or search them.",
)

_SPEAKERS = ["Dana (Acme)", "Lee (us)", "Priya (Acme)", "Sam (us)"]
_LINES = [
    "Thanks for making the time; let's go through the rollout plan for the second region.",
    "The pilot ran for six weeks with 140 users and the error rate stayed under half a percent.",
    "Procurement wants the security questionnaire back before they sign the renewal.",
    "We can have the single sign-on integration ready by the end of the month.",
    "Support tickets dropped by a third once the onboarding guide went live.",
    "The finance team asked whether the annual plan can be invoiced quarterly.",
    "Our main risk is the data migration from the old warehouse; it has 2.3 TB left.",
    "Let's agree that Priya owns the migration checklist and Sam reviews it on Friday.",
    "The dashboard latency complaint came from the Frankfurt office, not the whole region.",
    "We will send a written summary and the revised timeline after this call.",
]


def _transcript(target_bytes: int = 50_000) -> str:
    """A meeting transcript of about `target_bytes`, the same on every run."""
    lines = ["Meeting: Acme Corp quarterly review", "Date: 2026-11-12", ""]
    size, minute, i = 0, 0, 0
    while size < target_bytes:
        speaker = _SPEAKERS[i % len(_SPEAKERS)]
        line = f"[{minute // 60:02d}:{minute % 60:02d}] {speaker}: {_LINES[(i * 7) % len(_LINES)]}"
        lines.append(line)
        size += len(line) + 1
        minute += 1 + i % 2
        i += 1
    lines += ["", "Action items: Priya - migration checklist; Sam - review; Lee - summary."]
    return "\n".join(lines)


DOCUMENTS = {
    "meeting-acme-2026-11-12": {
        "title": "Acme Corp quarterly review (transcript)",
        "text": _transcript(),
    },
    "onboarding-guide": {
        "title": "Onboarding guide",
        "text": "Welcome! Create your account, join the team space, read the handbook.",
    },
    "pricing-2027": {
        "title": "Pricing for 2027",
        "text": "Team plan 12 EUR per seat and month; annual plans get two months free.",
    },
}


@mcp.tool
def list_documents() -> list[dict]:
    """Every document: its id, title and size in characters."""
    return [
        {"id": doc_id, "title": doc["title"], "size": len(doc["text"])}
        for doc_id, doc in DOCUMENTS.items()
    ]


@mcp.tool
def get_document(document_id: str) -> dict:
    """One document with its whole text.

    Args:
        document_id: the id from list_documents, e.g. "meeting-acme-2026-11-12".
    """
    doc = DOCUMENTS.get(document_id)
    if doc is None:
        raise ValueError(f"no document {document_id!r}; ids: {', '.join(DOCUMENTS)}")
    return {"id": document_id, "title": doc["title"], "text": doc["text"]}


@mcp.tool
def search(query: str) -> list[dict]:
    """Documents whose title or text contains the query (case-insensitive), with a snippet.

    Args:
        query: the words to look for.
    """
    needle = query.lower()
    hits = []
    for doc_id, doc in DOCUMENTS.items():
        text = doc["text"]
        at = text.lower().find(needle)
        if at >= 0 or needle in doc["title"].lower():
            start = max(0, at - 60)
            snippet = text[start : start + 160] if at >= 0 else text[:160]
            hits.append({"id": doc_id, "title": doc["title"], "snippet": snippet})
    return hits


if __name__ == "__main__":
    mcp.run(show_banner=False)
