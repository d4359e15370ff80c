"""Reading the Kubernetes API's answers: its failures as the executor's errors (the one error
boundary of the Kubernetes engine, `_translated`), where the configuration comes from, and why a
pod will not run."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import urllib3
import websocket
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from ..errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ImageNotFoundError,
    SandboxUnavailableError,
)

_IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_START_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
_HANDSHAKE_STATUS = re.compile(r"Handshake status (\d{3})")
_UNREACHABLE_HINT = (
    "Is the cluster up? In a pod, the service account must be mounted; elsewhere KUBECONFIG "
    "(and EXECUTOR_K8S_CONTEXT) must name a cluster this user may reach."
)
_RBAC_HINT = (
    "the app's service account needs the Role in deploy/kubernetes/rbac.yaml in namespace {ns}"
)


def _status_of(exc: ApiException) -> int:
    """The HTTP status of a failed call; exec handshakes report theirs only in the message."""
    if exc.status:
        return int(exc.status)
    code = getattr(exc.__context__, "status_code", None)
    if isinstance(code, int):
        return code
    match = _HANDSHAKE_STATUS.search(str(exc.reason or ""))
    return int(match.group(1)) if match else 0


def _message_of(exc: ApiException) -> str:
    """The API server's own explanation (a Status object's message), else the reason."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    return str(exc.reason or exc).split(" -+-+- ")[0]


@contextlib.contextmanager
def _translated(
    what: str, *, namespace: str = "", not_running: tuple[int, ...] = ()
) -> Iterator[None]:
    """Turn any Kubernetes-side failure inside the block into the executor's own error."""
    try:
        yield
    except ApiException as exc:
        status = _status_of(exc)
        message = _message_of(exc)
        if status == 0:
            raise SandboxUnavailableError(
                f"cannot reach the Kubernetes API server ({message}). {_UNREACHABLE_HINT}"
            ) from exc
        if status == 404:
            raise ContainerNotFoundError(f"{what}: {message}") from exc
        if status == 409 or status in not_running:
            raise ContainerConflictError(f"{what}: {message}") from exc
        if status == 401 or (status == 403 and "cannot" in message):  # RBAC, not admission
            hint = _RBAC_HINT.format(ns=namespace or "?")
            raise EngineError(f"{what}: {message} ({hint})") from exc
        raise EngineError(f"{what}: HTTP {status}: {message}") from exc
    except k8s_config.ConfigException as exc:
        raise SandboxUnavailableError(
            f"no Kubernetes configuration ({exc}). {_UNREACHABLE_HINT}"
        ) from exc
    except (urllib3.exceptions.HTTPError, websocket.WebSocketException, OSError) as exc:
        raise SandboxUnavailableError(
            f"cannot reach the Kubernetes API server ({type(exc).__name__}: {exc}). "
            f"{_UNREACHABLE_HINT}"
        ) from exc


def load_configuration(context: str = "") -> k8s.Configuration:
    """In-cluster configuration (the pod's service account), else the kubeconfig KUBECONFIG
    names, with `context` or its current context."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        # KUBECONFIG is read now (the client reads it once, when it is imported).
        k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None,
            context=context or None,
            client_configuration=configuration,
        )
    return configuration


def start_problem(pod: dict[str, Any]) -> Exception | None:
    """Why a pod will not run (deleted, ended, image or start errors); None if it may yet."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return ContainerConflictError("the pod is being deleted")
    if status.get("phase") in ("Succeeded", "Failed"):
        reason = status.get("reason") or status.get("message") or status.get("phase")
        return EngineError(f"the sandbox pod ended at once ({reason})")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        message = waiting.get("message") or ""
        if reason in _IMAGE_ERRORS:
            return ImageNotFoundError(
                f"the cluster cannot pull the sandbox image ({reason}: {message}); build it "
                "with `python -m executor.image build --bake`, push it, and set "
                "EXECUTOR_IMAGE_NAME (docs/kubernetes.md)"
            )
        if reason in _START_ERRORS:
            return EngineError(f"the sandbox container cannot start ({reason}: {message})")
    return None


def scheduling_note(pod: dict[str, Any]) -> str:
    """Why the scheduler has not placed the pod, for a timeout's message."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f", not scheduled: {condition.get('message') or condition.get('reason')}"
    return ""
