"""Build the sandbox image, and only when its inputs changed.

    python -m executor.image build    # build if missing or out of date (what `make` runs)
    python -m executor.image build --bake [--tag NAME]   # ... plus /tools and /skills baked in
    python -m executor.image status   # current | stale | missing

The image is labelled with a hash of everything under `docker/`; a build is skipped when the
label matches. The base is `python:3.12-slim` where it is present or can be pulled; otherwise a
Debian bookworm base is made here (debootstrap minbase + `docker import`), labelled with a hash
of its package list and cached, since it takes minutes to make.

`--bake` is for engines that cannot bind-mount host folders (Kubernetes): it builds the plain
image as above, then one more layer on it with the tools and skills folders copied to /tools and
/skills, owned by root and read-only for the sandbox user, tagged NAME (default: the image name
with `-baked` added to its tag), ready to push to a registry the cluster pulls from.

This is a Docker tool (it builds with the Docker SDK) and, like the engines, sits below the
executor's seam: the executor itself imports only `image_inputs.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker.errors

import docker
from settings import EXIT_CONFIG, ConfigError, load_settings, refusal

from .image_inputs import (
    BAKED_LABEL,
    BASE_LABEL,
    DOCKER_DIR,
    INPUTS_LABEL,
    LOCAL_BASE_REPO,
    inputs_hash,
    status_from_labels,
)

# The bake layer: kept here, not under docker/, so baking never changes the plain image's hash.
BAKE_DOCKERFILE = """\
ARG SANDBOX_IMAGE
FROM ${SANDBOX_IMAGE}
USER root
RUN rm -rf /tools /skills
COPY tools/ /tools/
COPY skills/ /skills/
RUN chown -R root:root /tools /skills && chmod -R u=rwX,go=rX /tools /skills
USER coderunner
"""
PULLABLE_BASE = "python:3.12-slim"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ImageBuildError(RuntimeError):
    """The image could not be built; the message says what to do."""


def base_packages(docker_dir: Path = DOCKER_DIR) -> list[str]:
    lines = (docker_dir / "base-packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _image_label(client: docker.DockerClient, name: str, label: str) -> str | None:
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    return (image.labels or {}).get(label, "")


def image_status(client: docker.DockerClient, name: str, docker_dir: Path = DOCKER_DIR) -> str:
    """`current`, `stale` (built from other inputs) or `missing`."""
    label = _image_label(client, name, INPUTS_LABEL)
    return status_from_labels(None if label is None else {INPUTS_LABEL: label}, docker_dir)


def _pull_base(client: docker.DockerClient) -> str | None:
    try:
        client.images.get(PULLABLE_BASE)
        return PULLABLE_BASE
    except docker.errors.ImageNotFound:
        pass
    print(f"[image] pulling {PULLABLE_BASE} ...", flush=True)
    try:
        client.images.pull(PULLABLE_BASE)
    except docker.errors.APIError as exc:
        print(
            f"[image] cannot pull {PULLABLE_BASE} ({exc.explanation or exc}); "
            "building a Debian base locally instead",
            flush=True,
        )
        return None
    return PULLABLE_BASE


def _debootstrap_base(client: docker.DockerClient, docker_dir: Path) -> str:
    packages = base_packages(docker_dir)
    mirror = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
    base_hash = hashlib.sha256(f"{DEBIAN_SUITE}\0{mirror}\0{packages}".encode()).hexdigest()[:12]
    tag = f"{LOCAL_BASE_REPO}:{DEBIAN_SUITE}-{base_hash}"
    if _image_label(client, tag, BASE_LABEL) == base_hash:
        print(f"[image] using cached base {tag}", flush=True)
        return tag
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        if os.geteuid() == 0 and shutil.which("apt-get"):
            print("[image] installing debootstrap ...", flush=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], check=False)
        if not Path(debootstrap).exists():
            raise ImageBuildError(
                f"{PULLABLE_BASE} cannot be pulled and debootstrap is not installed. "
                "Install it (`sudo apt-get install debootstrap`) or make the base available "
                f"(`docker pull {PULLABLE_BASE}`), then run `make image` again."
            )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "building the local base image needs root (debootstrap). "
            "Run `sudo make image` once, or make python:3.12-slim available."
        )
    print(
        f"[image] building base {tag} with debootstrap (a few minutes; cached afterwards): "
        f"{', '.join(packages)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mce-base-") as root:
        rootfs = Path(root) / "rootfs"
        cmd = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(packages)}",
            DEBIAN_SUITE,
            str(rootfs),
            mirror,
        ]
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            raise ImageBuildError(
                f"debootstrap failed (exit {result.returncode}); check that {mirror} is reachable "
                "(set DEBIAN_MIRROR to another mirror) and run `make image` again."
            )
        # Trim what a sandbox never needs: apt lists and caches, docs, man pages.
        for junk in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
        ):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        print(f"[image] importing {tag} ...", flush=True)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE,
        )
        try:
            assert tar.stdout is not None
            client.api.import_image_from_stream(
                tar.stdout,
                repository=LOCAL_BASE_REPO,
                tag=tag.split(":", 1)[1],
                changes=[
                    f"LABEL {BASE_LABEL}={base_hash}",
                    'CMD ["sleep", "infinity"]',
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ],
            )
        finally:
            tar.stdout.close() if tar.stdout else None
            tar.wait()
    return tag


def build(image_name: str, docker_dir: Path = DOCKER_DIR, *, force: bool = False) -> str:
    """Build `image_name` unless it is current; return the image id."""
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImageBuildError(
            f"cannot reach the Docker daemon ({exc}). Start it (e.g. `sudo dockerd &` or "
            "`sudo systemctl start docker`) and check that you may use /var/run/docker.sock."
        ) from exc
    digest = inputs_hash(docker_dir)
    if not force and image_status(client, image_name, docker_dir) == "current":
        print(f"[image] {image_name} is up to date ({digest})", flush=True)
        return client.images.get(image_name).id
    base = _pull_base(client) or _debootstrap_base(client, docker_dir)
    print(f"[image] building {image_name} from {base} ...", flush=True)
    last_error = None
    for chunk in client.api.build(
        path=str(docker_dir),
        tag=image_name,
        buildargs={"BASE_IMAGE": base},
        labels={INPUTS_LABEL: digest},
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    ):
        if "stream" in chunk:
            text = chunk["stream"].rstrip()
            if text:
                print(f"[image]   {text}", flush=True)
        if "error" in chunk:
            last_error = chunk["error"].strip()
    if last_error:
        raise ImageBuildError(
            f"docker build failed: {last_error}. Fix docker/Dockerfile and run `make image` again."
        )
    image = client.images.get(image_name)
    print(
        f"[image] built {image_name} ({digest}, {image.attrs['Size'] / 1e6:.0f} MB)",
        flush=True,
    )
    return image.id


def baked_name(image_name: str) -> str:
    """`repo:tag` -> `repo:tag-baked` (`repo` -> `repo:latest-baked`)."""
    repo, sep, tag = image_name.rpartition(":")
    if not sep or "/" in tag:  # no tag (the colon belonged to a registry port)
        return f"{image_name}:latest-baked"
    return f"{repo}:{tag}-baked"


def _tree_hash(digest: Any, root: Path, name: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        digest.update(f"{name}/{path.relative_to(root).as_posix()}".encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


def bake(image_name: str, tag: str, tools: Path, skills: Path, *, force: bool = False) -> str:
    """Build `tag`: the current `image_name` with `tools` and `skills` copied to /tools and
    /skills (read-only). Skipped when `tag` already holds exactly these inputs."""
    base_id = build(image_name, force=force)
    return bake_layer(docker.from_env(timeout=600), base_id, tag, tools, skills, force=force)


def bake_layer(
    client: docker.DockerClient,
    base_id: str,
    tag: str,
    tools: Path,
    skills: Path,
    *,
    force: bool = False,
) -> str:
    """The bake step alone, on an existing image id (tests bake the image they already have)."""
    digest = hashlib.sha256(base_id.encode() + b"\0")
    _tree_hash(digest, tools, "tools")
    _tree_hash(digest, skills, "skills")
    baked_hash = digest.hexdigest()[:16]
    if not force and _image_label(client, tag, BAKED_LABEL) == baked_hash:
        print(f"[image] {tag} is up to date ({baked_hash})", flush=True)
        return client.images.get(tag).id
    with tempfile.TemporaryDirectory(prefix="mce-bake-") as context:
        root = Path(context)
        (root / "Dockerfile").write_text(BAKE_DOCKERFILE)
        for source, target in ((tools, "tools"), (skills, "skills")):
            if source.is_dir():
                shutil.copytree(source, root / target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (root / target).mkdir()
        print(f"[image] baking {tools} and {skills} into {tag} ...", flush=True)
        last_error = None
        for chunk in client.api.build(
            path=context,
            tag=tag,
            buildargs={"SANDBOX_IMAGE": base_id},
            labels={BAKED_LABEL: baked_hash},
            network_mode="none",  # copying files needs no network
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in chunk:
                last_error = chunk["error"].strip()
    if last_error:
        raise ImageBuildError(f"baking tools and skills failed: {last_error}")
    print(f"[image] built {tag} ({baked_hash}); push it where the cluster pulls from", flush=True)
    return client.images.get(tag).id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m executor.image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["build", "status"])
    parser.add_argument("--force", action="store_true", help="rebuild even when current")
    parser.add_argument(
        "--bake",
        action="store_true",
        help="also build an image with /tools and /skills baked in (for Kubernetes)",
    )
    parser.add_argument("--tag", help="name of the baked image (default: <image>-baked)")
    args = parser.parse_args(argv)
    try:
        spec = load_settings().executor
    except ConfigError as exc:  # `make run` builds first: its refusal must not be a traceback
        print(refusal(exc), file=sys.stderr)
        return EXIT_CONFIG
    image_name = spec.image_name
    try:
        if args.command == "status":
            print(image_status(docker.from_env(), image_name))
            return 0
        if args.bake:
            tag = args.tag or baked_name(image_name)
            bake(image_name, tag, spec.tools_path, spec.skills_path, force=args.force)
        else:
            build(image_name, force=args.force)
    except (ImageBuildError, docker.errors.DockerException) as exc:
        print(f"[image] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
