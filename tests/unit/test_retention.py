"""Which workspaces retention may delete: old and unused only, counted from first sight."""

from __future__ import annotations

from executor._retention import DAY_S, LastUse, expired

NOW = 1_900_000_000.0


def test_only_volumes_unused_longer_than_the_retention_and_not_in_use_expire(tmp_path):
    uses = LastUse(tmp_path / "last-use.json")
    uses.touch("old", NOW - 40 * DAY_S)
    uses.touch("old-but-running", NOW - 40 * DAY_S)
    uses.touch("recent", NOW - 2 * DAY_S)
    gone = expired(
        ["old", "old-but-running", "recent"],
        uses,
        now=NOW,
        retention_days=30,
        in_use={"old-but-running"},
    )
    assert gone == ["old"]


def test_a_volume_never_seen_counts_from_first_sight_so_an_upgrade_deletes_nothing(tmp_path):
    uses = LastUse(tmp_path / "last-use.json")
    assert expired(["made-by-an-old-version"], uses, now=NOW, retention_days=30, in_use=set()) == []
    later = NOW + 31 * DAY_S
    assert expired(
        ["made-by-an-old-version"], uses, now=later, retention_days=30, in_use=set()
    ) == ["made-by-an-old-version"]


def test_zero_days_keeps_everything(tmp_path):
    uses = LastUse(None)
    uses.touch("ancient", 0.0)
    assert expired(["ancient"], uses, now=NOW, retention_days=0, in_use=set()) == []


def test_last_use_survives_a_restart_and_only_moves_forward(tmp_path):
    path = tmp_path / "last-use.json"
    uses = LastUse(path)
    uses.touch("v", NOW)
    uses.touch("v", NOW - 100)  # an older report does not move it back
    uses.save()
    again = LastUse(path)
    assert again.seen("v", NOW + 5) == NOW
    again.forget("v")
    again.save()
    assert LastUse(path).seen("v", NOW + 7) == NOW + 7


def test_an_unreadable_file_is_ignored(tmp_path):
    path = tmp_path / "last-use.json"
    path.write_text("{not json")
    assert LastUse(path).seen("v", NOW) == NOW
