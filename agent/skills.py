"""Load the skills under `skills/` with ADK's own loader, skipping (and logging) invalid ones."""

from __future__ import annotations

import logging
from pathlib import Path

from google.adk.skills import Skill, list_skills_in_dir, load_skill_from_dir

logger = logging.getLogger(__name__)


def load_skills(skills_dir: Path) -> list[Skill]:
    """Every valid skill in `skills_dir`; an invalid one is reported in the log and skipped."""
    if not skills_dir.is_dir():
        logger.warning("skills directory %s does not exist; no skills loaded", skills_dir)
        return []

    def report(skill_id: str, error: Exception) -> None:
        logger.warning("skipping invalid skill %r in %s: %s", skill_id, skills_dir, error)

    skills = []
    for skill_id in list_skills_in_dir(skills_dir, on_error=report):
        try:
            skills.append(load_skill_from_dir(skills_dir / skill_id))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            report(skill_id, exc)
    logger.info("loaded %d skill(s): %s", len(skills), ", ".join(s.name for s in skills))
    return skills
