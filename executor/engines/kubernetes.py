"""The Kubernetes engine: the only module that talks to the official `kubernetes` client.

One session is one Pod (built by `_k8s_objects.py`) on one PVC for /workspace; one deny-all
NetworkPolicy selects every sandbox pod. Stop deletes the pod and keeps the PVC; start makes a
new pod on the same PVC. Pod and PVC names are DNS-1123 forms of the executor's names (the
executor's own name and the labels Kubernetes cannot hold travel in annotations), so what an
earlier process left is found by name or by labels.

Every kubernetes, urllib3, websocket and socket exception is translated, in `_translated`
(`_k8s_api.py`), into the executor's error tree: an API server that does not answer within
about a second is `SandboxUnavailableError`, 404 `ContainerNotFoundError`, 409
`ContainerConflictError`.

Exec goes over the API server's websocket (`kubernetes.stream.stream`, channel protocol v5 or
v4), each on an ApiClient of its own, behind `KubernetesExecChannel` (`_k8s_exec.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.stream import stream as k8s_stream
from kubernetes.stream.ws_client import WSClient

from settings import ExecutorSettings

from ..errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ImageNotFoundError,
    SandboxUnavailableError,
)
from . import _k8s_objects as objects
from ._k8s_api import _translated, load_configuration, scheduling_note, start_problem
from ._k8s_exec import KubernetesExecChannel, bounded, close_quietly
from .base import ContainerInfo, ContainerRequest, Engine, VolumeInfo

logger = logging.getLogger(__name__)


_REQUEST_TIMEOUT = (1.0, 30.0)  # (connect, read) seconds of every API call
_PING_TIMEOUT = (1.0, 1.0)
_EXEC_CONNECT_TIMEOUT_S = 10.0  # the exec handshake goes API server -> kubelet -> runtime
_DELETE_WAIT_S = 60.0
_DETACHED_WAIT_S = 1.0


class KubernetesEngine(Engine):
    """Sandboxes as pods in one namespace of the cluster the configuration names."""

    name = "kubernetes"

    def __init__(
        self,
        spec: ExecutorSettings | None = None,
        *,
        configuration: k8s.Configuration | None = None,
        max_connections: int = 64,
    ) -> None:
        self.spec = spec or ExecutorSettings()
        self.options = objects.KubeOptions.from_settings(self.spec)
        self.namespace = self.options.namespace
        self._configuration = configuration
        self._max_connections = max_connections
        self._api_client: k8s.ApiClient | None = None
        self._lock = threading.Lock()
        self._policy_ready = False

    # -- plumbing --------------------------------------------------------------------------

    def _translated(self, what: str, **kwargs: Any) -> contextlib.AbstractContextManager[None]:
        return _translated(what, namespace=self.namespace, **kwargs)

    @property
    def api_client(self) -> k8s.ApiClient:
        """The API client, made on first use (in-cluster config, else kubeconfig)."""
        if self._api_client is None:
            with self._lock:
                if self._api_client is None:
                    with self._translated("configure"):
                        configuration = self._configuration or load_configuration(
                            self.spec.k8s_context
                        )
                    # A refused, unanswered or timed-out call fails at once, not after retries.
                    configuration.retries = urllib3.Retry(
                        total=1, connect=0, read=0, backoff_factor=0
                    )
                    configuration.connection_pool_maxsize = self._max_connections
                    self._api_client = k8s.ApiClient(configuration)
        return self._api_client

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call, its JSON answer as a dict (no model classes: less to go wrong)."""
        kwargs.setdefault("_request_timeout", _REQUEST_TIMEOUT)
        response = method(*args, _preload_content=False, **kwargs)
        data = response.data
        return json.loads(data) if data else {}

    def _read_pod(self, name: str) -> dict[str, Any] | None:
        try:
            with self._translated(f"read pod {name}"):
                return self._call(self.core.read_namespaced_pod, name, self.namespace)
        except ContainerNotFoundError:
            return None

    def _read_pvc(self, name: str) -> dict[str, Any] | None:
        try:
            with self._translated(f"read volume {name}"):
                return self._call(
                    self.core.read_namespaced_persistent_volume_claim, name, self.namespace
                )
        except ContainerNotFoundError:
            return None

    @staticmethod
    def _selector(labels: dict[str, str]) -> tuple[str, dict[str, str]]:
        """A label selector for what Kubernetes holds as labels; the rest is checked here."""
        kept, _ = objects.split_labels(labels)
        rest = {k: v for k, v in labels.items() if k not in kept}
        return ",".join(f"{k}={v}" for k, v in sorted(kept.items())), rest

    # -- the platform ----------------------------------------------------------------------

    def ping(self) -> None:
        try:
            with self._translated("ping"):
                self._call(k8s.VersionApi(self.api_client).get_code, _request_timeout=_PING_TIMEOUT)
        except EngineError as exc:  # it answers, but not as an API server this user may use
            raise SandboxUnavailableError(f"the Kubernetes API server refused: {exc}") from exc

    def version(self) -> str:
        with self._translated("version"):
            info = self._call(k8s.VersionApi(self.api_client).get_code)
        return f"Kubernetes {info.get('gitVersion', '?')} (namespace {self.namespace})"

    def image_id(self, image: str) -> str:
        """The image reference itself: the API cannot look into registries. A changed
        EXECUTOR_IMAGE_NAME recreates sandboxes; a re-pushed tag does not (use new tags)."""
        return image

    # -- pods ------------------------------------------------------------------------------

    @staticmethod
    def _info(pod: dict[str, Any]) -> ContainerInfo:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        container = next(iter(status.get("containerStatuses") or []), {})
        state = container.get("state") or {}
        deleting = bool(meta.get("deletionTimestamp"))
        running = phase == "Running" and "running" in state and not deleting
        word = "Terminating" if deleting else phase
        waiting = (state.get("waiting") or {}).get("reason")
        if waiting:
            word = f"{word} ({waiting})"
        image = next(iter((pod.get("spec") or {}).get("containers") or []), {}).get("image", "")
        return ContainerInfo(
            id=meta.get("name", ""),
            name=objects.executor_name(meta),
            running=running,
            paused=False,
            image_id=image,
            labels=objects.executor_labels(meta),
            status=word,
        )

    def inspect(self, ref: str) -> ContainerInfo | None:
        pod = self._read_pod(objects.dns_name(ref))
        return None if pod is None else self._info(pod)

    def list(self, labels: dict[str, str]) -> list[ContainerInfo]:
        selector, rest = self._selector(labels)
        with self._translated("list pods"):
            found = self._call(
                self.core.list_namespaced_pod, self.namespace, label_selector=selector
            )
        infos = [self._info(pod) for pod in found.get("items") or []]
        return [i for i in infos if all(i.labels.get(k) == v for k, v in rest.items())]

    def _ensure_network_policy(self) -> None:
        """The deny-all policy of sandbox pods, made once per namespace."""
        if self._policy_ready:
            return
        networking = k8s.NetworkingV1Api(self.api_client)
        body = objects.network_policy(self.namespace)
        try:
            with self._translated("read network policy"):
                self._call(
                    networking.read_namespaced_network_policy,
                    objects.NETWORK_POLICY,
                    self.namespace,
                )
        except ContainerNotFoundError:
            with (
                contextlib.suppress(ContainerConflictError),
                self._translated("create network policy"),
            ):
                self._call(networking.create_namespaced_network_policy, self.namespace, body)
        self._policy_ready = True

    def create(self, request: ContainerRequest) -> str:
        if request.spec.network_mode == "none":
            self._ensure_network_policy()
        else:
            logger.warning(
                "network_mode=%s: sandbox pods are not selected by the deny-all policy",
                request.spec.network_mode,
            )
        self.ensure_volume(request.volume, request.labels, request.spec.workspace_quota_bytes)
        body = objects.pod(request, self.options)
        name = body["metadata"]["name"]
        with self._translated(f"create {request.name}"):
            self._call(self.core.create_namespaced_pod, self.namespace, body)
        try:
            self._wait_running(name, request.spec.k8s_start_timeout_s)
        except (EngineError, ImageNotFoundError):
            self.remove(name)  # a pod that will not run must not be left behind
            raise
        return name

    def _wait_running(self, name: str, timeout_s: float) -> None:
        """Until the pod runs; ImageNotFoundError / EngineError when it cannot."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        last = "Pending"
        while True:
            pod = self._read_pod(name)
            if pod is None:
                raise ContainerNotFoundError(f"pod {name} disappeared while starting")
            info = self._info(pod)
            if info.running:
                return
            problem = start_problem(pod)
            if problem is not None:
                raise problem
            last = info.status + scheduling_note(pod)
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"pod {name} did not start within {timeout_s:g} s (last seen: {last}); "
                    "raise EXECUTOR_K8S_START_TIMEOUT_S if image pulls are slow"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def start(self, ref: str) -> None:
        name = objects.dns_name(ref)
        pod = self._read_pod(name)
        if pod is None:
            raise ContainerNotFoundError(f"start {ref}: no such pod")
        info = self._info(pod)
        if info.running:
            return
        ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if not ended and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._wait_running(name, self.spec.k8s_start_timeout_s)  # still starting
            return
        body = objects.respawn(pod)  # pods cannot restart: a new one on the same PVC
        self._delete_pod(name, grace_s=1)
        with self._translated(f"start {ref}"):
            self._call(self.core.create_namespaced_pod, self.namespace, body)
        self._wait_running(name, self.spec.k8s_start_timeout_s)

    def _delete_pod(self, name: str, *, grace_s: int) -> None:
        """Delete the pod and wait until it is gone (so its name and PVC are free again)."""
        try:
            with self._translated(f"delete pod {name}"):
                gone = self._call(
                    self.core.delete_namespaced_pod,
                    name,
                    self.namespace,
                    grace_period_seconds=max(1, grace_s),
                )
        except ContainerNotFoundError:
            return
        uid = (gone.get("metadata") or {}).get("uid")
        deadline = time.monotonic() + grace_s + _DELETE_WAIT_S
        delay = 0.02
        while time.monotonic() < deadline:
            pod = self._read_pod(name)
            if pod is None or (pod.get("metadata") or {}).get("uid") != uid:
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        logger.warning("pod %s still terminating after %.0f s", name, _DELETE_WAIT_S)

    def stop(self, ref: str, timeout_s: float = 1.0) -> None:
        """Delete the pod, keep its PVC: `start` or `create` makes a new pod on it."""
        name = objects.dns_name(ref)
        if self._read_pod(name) is None:
            raise ContainerNotFoundError(f"stop {ref}: no such pod")
        self._delete_pod(name, grace_s=int(timeout_s))

    def kill(self, ref: str) -> None:
        self._delete_pod(objects.dns_name(ref), grace_s=1)

    def remove(self, ref: str) -> None:
        self._delete_pod(objects.dns_name(ref), grace_s=1)

    def claim(self, ref: str, labels: dict[str, str]) -> bool:
        """Relabel a ready pool pod (and its PVC) as a session's, with the pod's resourceVersion
        in the patch: of several app replicas claiming it, exactly one succeeds."""
        name = objects.dns_name(ref)
        pod = self._read_pod(name)
        if pod is None or not self._info(pod).running:
            return False
        meta = pod.get("metadata") or {}
        if (meta.get("annotations") or {}).get(objects.CLAIMED_ANNOTATION):
            return False  # taken already
        patch = objects.claim_patch(meta, labels)
        try:
            with self._translated(f"claim {ref}"):
                self._call(self.core.patch_namespaced_pod, name, self.namespace, patch)
        except (ContainerConflictError, ContainerNotFoundError):
            return False  # another replica took it (or it went away) first
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim_name:
                self._relabel_pvc(claim_name, labels)
        return True

    def _relabel_pvc(self, name: str, labels: dict[str, str]) -> None:
        pvc = self._read_pvc(name)
        if pvc is None:
            return
        patch = objects.label_patch(pvc.get("metadata") or {}, labels)
        with self._translated(f"relabel volume {name}"):
            self._call(
                self.core.patch_namespaced_persistent_volume_claim, name, self.namespace, patch
            )

    # -- volumes ---------------------------------------------------------------------------

    def ensure_volume(self, name: str, labels: dict[str, str], size_bytes: int) -> None:
        pvc_name = objects.dns_name(name)
        existing = self._read_pvc(pvc_name)
        if existing is not None and (existing.get("metadata") or {}).get("deletionTimestamp"):
            self._wait_pvc_gone(pvc_name)  # removed a moment ago: make it anew
            existing = None
        if existing is not None:
            return
        body = objects.pvc(name, labels, self.options, size_bytes)
        with contextlib.suppress(ContainerConflictError), self._translated(f"volume {name}"):
            self._call(self.core.create_namespaced_persistent_volume_claim, self.namespace, body)

    def _wait_pvc_gone(self, name: str) -> None:
        deadline = time.monotonic() + _DELETE_WAIT_S
        while time.monotonic() < deadline and self._read_pvc(name) is not None:
            time.sleep(0.1)

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(ContainerNotFoundError), self._translated(f"remove volume {name}"):
            self._call(
                self.core.delete_namespaced_persistent_volume_claim,
                objects.dns_name(name),
                self.namespace,
            )

    def list_volumes(self, labels: dict[str, str]) -> list[VolumeInfo]:
        selector, rest = self._selector(labels)
        with self._translated("list volumes"):
            found = self._call(
                self.core.list_namespaced_persistent_volume_claim,
                self.namespace,
                label_selector=selector,
            )
        volumes = []
        for pvc in found.get("items") or []:
            meta = pvc.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            volume_labels = objects.executor_labels(meta)
            if all(volume_labels.get(k) == v for k, v in rest.items()):
                volumes.append(VolumeInfo(objects.executor_name(meta), volume_labels))
        return volumes

    # -- exec ------------------------------------------------------------------------------

    def open_exec(self, ref: str, argv: list[str], *, stdin: bool) -> KubernetesExecChannel:
        """`argv` in the pod's container: as uid 1000 in /workspace (the pod's own user and
        working directory; exec cannot choose either)."""
        name = objects.dns_name(ref)
        # `stream` swaps `call_api` on the client it is given while it connects: on the shared
        # client, a REST call of another thread would go out as a websocket meanwhile (and two
        # concurrent execs can leave the swap in place). Each exec gets a client of its own.
        exec_client = k8s.ApiClient(self.api_client.configuration)

        def connect() -> WSClient:
            return k8s_stream(
                k8s.CoreV1Api(exec_client).connect_get_namespaced_pod_exec,
                name,
                self.namespace,
                container=objects.CONTAINER,
                command=argv,
                stdin=stdin,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                binary=True,
            )

        # 400: the pod exists but its container does not run (starting, ended, deleting).
        try:
            with self._translated(f"exec in {ref}", not_running=(400,)):
                client = bounded(connect, _EXEC_CONNECT_TIMEOUT_S, close_quietly)
        finally:
            exec_client.rest_client.close()  # the websocket has its own socket
        return KubernetesExecChannel(client)

    def exec_detached(self, ref: str, argv: list[str]) -> None:
        """Run `argv` to completion on its own stream in a background thread. Waits a moment
        for it (the kill-all takes milliseconds), so a failure to start it is raised here."""
        channel = self.open_exec(ref, argv, stdin=False)
        done = threading.Event()

        def drain() -> None:
            deadline = time.monotonic() + 60
            try:
                while time.monotonic() < deadline:
                    readable, _ = channel.wait(0.5)
                    if readable and channel.read() is None:
                        channel.exit_code()
                        break
            finally:
                channel.close()
                done.set()

        threading.Thread(target=drain, name="k8s-exec-detached", daemon=True).start()
        if done.wait(_DETACHED_WAIT_S) and channel.failure:
            raise EngineError(f"exec in {ref} could not run: {channel.failure}")

    def close(self) -> None:
        if self._api_client is not None:
            with contextlib.suppress(OSError):
                self._api_client.close()
