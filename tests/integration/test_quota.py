"""Kernel-enforced workspace quota: a loop-mounted ext4 image per workspace (where the executor
runs as root next to its daemon, as here and in CI)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from executor import QuotaExceededError
from executor.engines._loop_quota import loop_unavailable_reason

pytestmark = [
    pytest.mark.docker_only("loop-mounted workspace images are the Docker engine's"),
    pytest.mark.docker,
    pytest.mark.skipif(loop_unavailable_reason() is not None, reason="no loop devices here"),
]

QUOTA = 64 << 20


@pytest.fixture
def quota_client(make_executor):
    return make_executor(workspace_quota_bytes=QUOTA, workspace_quota_mode="loop")


def host_used(path) -> int:
    usage = shutil.disk_usage(path)
    return usage.total - usage.free


async def test_writing_past_the_quota_fails_with_enospc_and_the_host_disk_is_untouched(
    quota_client, user_id, state_dir
):
    before = host_used(state_dir)
    result = await quota_client.run(
        user_id,
        "for i in $(seq 16); do dd if=/dev/zero of=f$i bs=1M count=16 status=none || break; done;"
        " du -sm /workspace | cut -f1",
        timeout=120,
    )
    assert "No space left on device" in result.stderr
    assert 60 <= int(result.stdout.split()[-1]) <= 80  # stopped at the quota, not at 256
    assert host_used(state_dir) - before < QUOTA + (24 << 20)
    # The session stays usable: free some space, write again.
    again = await quota_client.run(user_id, "rm f1 f2 && echo fresh > new.txt && cat new.txt")
    assert (again.exit_code, again.stdout) == (0, "fresh\n")
    with pytest.raises(QuotaExceededError):  # the early, friendly check stays
        await quota_client.upload_file(user_id, "big.bin", b"x" * (QUOTA - (1 << 20)))


async def test_another_session_is_not_affected(quota_client, user_id):
    await quota_client.run(user_id, "dd if=/dev/zero of=full bs=1M count=100 status=none")
    other = await quota_client.run(user_id + "-other", "head -c 10M /dev/zero > ok.bin && echo ok")
    assert (other.exit_code, other.stdout) == (0, "ok\n")


async def test_the_workspace_looks_like_a_plain_folder_owned_by_the_sandbox_user(
    quota_client, user_id
):
    result = await quota_client.run(user_id, "ls -A /workspace; stat -c '%U %a' /workspace")
    assert result.stdout == "coderunner 755\n"  # no lost+found


def reboot_and_hand_the_device_to_another_file(device: str, image: str) -> str:
    """What a host reboot does to a loop device, and worse: its number now names a decoy."""
    subprocess.run(["losetup", "-d", device], check=True)
    decoy = os.path.join(os.path.dirname(image), "decoy.img")
    with open(decoy, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", decoy], check=True)
    subprocess.run(["losetup", device, decoy], check=True)
    return decoy


def release(device: str, decoy: str) -> None:
    subprocess.run(["losetup", "-d", device], check=False)
    os.unlink(decoy)


def leftovers_of(image: str) -> tuple[bool, str]:
    attached = subprocess.run(["losetup", "-j", image], capture_output=True, text=True)
    return os.path.exists(image), attached.stdout.strip()


def workspace_image(docker_client, volume: str) -> tuple[str, str]:
    attrs = docker_client.volumes.get(volume).attrs
    return attrs["Labels"]["mcp-code-executor.quota-image"], attrs["Options"]["device"]


async def test_after_a_host_reboot_the_workspace_is_attached_again_to_its_own_image(
    quota_client, user_id, docker_client
):
    await quota_client.write_file(user_id, "keep.txt", "survives")
    info = await quota_client.sandbox_info(user_id)
    image, device = workspace_image(docker_client, info.volume)
    await quota_client.stop(user_id)
    decoy = reboot_and_hand_the_device_to_another_file(device, image)
    try:
        result = await quota_client.run(user_id, "cat keep.txt; ls -A")
        assert (result.exit_code, result.stdout) == (0, "surviveskeep.txt\n")  # its own files
        assert workspace_image(docker_client, info.volume)[1] != device
    finally:
        release(device, decoy)


async def test_deleting_a_session_removes_container_volume_image_and_device(
    quota_client, user_id, docker_client
):
    await quota_client.write_file(user_id, "x.txt", "x")
    info = await quota_client.sandbox_info(user_id)
    image, _ = workspace_image(docker_client, info.volume)
    assert leftovers_of(image)[0]
    await quota_client.delete_session(user_id)
    assert not docker_client.containers.list(all=True, filters={"name": info.container_name})
    assert not docker_client.volumes.list(filters={"name": info.volume})
    assert leftovers_of(image) == (False, "")


async def test_pooled_workspaces_carry_the_quota_too(make_executor, user_id):
    pooled = make_executor(workspace_quota_bytes=QUOTA, workspace_quota_mode="loop", pool_size=1)
    await pooled.start()
    for _ in range(300):
        if pooled.pool_status().ready:
            break
        await asyncio.sleep(0.1)
    result = await pooled.run(user_id, "dd if=/dev/zero of=f bs=1M count=100 status=none")
    assert "No space left on device" in result.stderr
    assert (await pooled.inventory()).quota_mode.startswith("loop")


async def test_without_loop_quotas_the_per_file_mode_is_used_and_said(make_executor, user_id):
    plain = make_executor(workspace_quota_mode="off")
    assert (await plain.run(user_id, "echo hi")).stdout == "hi\n"
    assert (await plain.inventory()).quota_mode.startswith("per-file")


async def test_a_big_file_is_replaced_in_a_nearly_full_workspace_and_a_failed_upload_keeps_it(
    quota_client, user_id
):
    """Temp-then-rename needs room for two copies; with 60 of 64 MiB used there is none, and a
    same-size replacement must still work (staged in /tmp), while one that cannot fit changes
    nothing."""
    old = os.urandom(30 << 20)
    await quota_client.upload_file(user_id, "data.bin", old)
    await quota_client.run(user_id, "head -c 30M /dev/zero > filler.bin")
    used = await quota_client.run(user_id, "du -sm /workspace | cut -f1")
    assert int(used.stdout) >= 59
    new = os.urandom(30 << 20)
    await quota_client.upload_file(user_id, "data.bin", new)
    assert await quota_client.download_file(user_id, "data.bin") == new
    with pytest.raises(QuotaExceededError, match=r"Nothing was changed|quota"):
        await quota_client.upload_file(user_id, "data.bin", os.urandom(40 << 20))
    assert await quota_client.download_file(user_id, "data.bin") == new
    listing = await quota_client.run(user_id, "ls -A /workspace; ls -A /tmp | grep -c part || true")
    assert listing.stdout.split() == ["data.bin", "filler.bin", "0"]
