"""A Kubernetes API server double on loopback, for the official client to talk to for real.

It keeps pods, PVCs and NetworkPolicies in memory the way the API server does where the engine
can tell: resourceVersions that change on every write, 409 on a name in use and on a patch
carrying a stale resourceVersion, label selectors, pods that are Pending before Running and
Terminating before gone, PVCs held by the pvc-protection finalizer while a pod uses them,
bearer-token authentication, a Role's verbs (403 outside them), the `restricted` Pod Security
level (403 for a pod that misses a hardening field), and strict schema validation of every
object created (422), with the same schemas `kubernetes-validate --strict` uses.

Exec speaks the real websocket subprotocols (v5.channel.k8s.io, v4.channel.k8s.io): channel 0
stdin, 1 stdout, 2 stderr, 3 the exit Status, 255 a closed channel (v5). With a `DockerPods`
backend each pod is a hardened Docker container made from the pod's own spec (image, command,
user, env, limits, memory-backed emptyDirs, read-only root, the PVC as a Docker volume; no
ulimits, as in a pod), and each exec is a `docker exec` in it, bridged frame by frame. Without a
backend, pods only change state (for API-level tests that need no processes).

Not modelled (a real cluster differs here): scheduling, nodes, image pulls (a missing Docker image
is ErrImagePull at once), watch, strategic-merge semantics beyond maps, admission beyond Pod
Security, the NetworkPolicy's enforcement (the backing containers have no network at all).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import hashlib
import http.server
import json
import re
import selectors
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
import yaml

from executor.engines.base import ChannelClosed

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PATH = re.compile(
    r"^/(?:api/v1|apis/networking\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<resource>pods|persistentvolumeclaims|networkpolicies)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>exec))?$"
)
_KINDS = {
    "pods": ("v1", "Pod"),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim"),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy"),
}
_BUFFER_LIMIT = 4 << 20  # bytes held for a slow side before the other side is paused


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def role_rules(path: Path) -> dict[str, set[str]]:
    """resource -> verbs of the Role in a manifest file (for `FakeKubeApi(rbac=...)`)."""
    rules: dict[str, set[str]] = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Role":
            for rule in doc.get("rules") or []:
                for resource in rule.get("resources") or []:
                    rules.setdefault(resource, set()).update(rule.get("verbs") or [])
    return rules


def pod_security_violations(pod: dict[str, Any]) -> list[str]:
    """What the `restricted` Pod Security Standard would refuse in this pod."""
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    found = []
    for c in spec.get("containers") or []:
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append("allowPrivilegeEscalation != false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            found.append("capabilities.drop lacks ALL")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            found.append("runAsNonRoot != true")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append("seccompProfile is not RuntimeDefault")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append("hostPath volume")
    return found


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch (what strategic merge does to maps such as labels)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class FakeKubeApi:
    """The API server double; `start()` it, point a kubeconfig at it, `stop()` it."""

    def __init__(
        self,
        *,
        backend: Any = None,
        token: str = "double-token",
        rbac: dict[str, set[str]] | None = None,
        protocols: tuple[str, ...] = (V5, V4),
        tls: tuple[Path, Path] | None = None,
        start_delay_s: float = 0.0,
        terminate_delay_s: float = 0.0,
        validate: bool = True,
        version: str = "v1.33.0",
        missing_images: frozenset[str] = frozenset(),
    ) -> None:
        self.backend = backend
        self.token = token
        self.rbac = rbac
        self.protocols = protocols
        self.tls = tls
        self.start_delay_s = start_delay_s
        self.terminate_delay_s = terminate_delay_s
        self.validate = validate
        self.version = version
        self.missing_images = missing_images
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self.rv = 0
        self.used: set[tuple[str, str]] = set()  # (resource, verb) the engine needed
        self.requests: list[tuple[str, str]] = []
        self.execs = 0
        self.conflicts = 0  # patches refused for a stale resourceVersion
        self.pause_api = threading.Event()  # set: the server accepts but never answers
        self._stopping = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- running ---------------------------------------------------------------------------

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(_Handler):
            server_api = api

        server = _Server(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            # The handshake happens in each connection's thread (_Handler.setup), not in
            # accept(): done there, one slow handshake would hold up every other connection.
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        thread = threading.Thread(target=server.serve_forever, name="fake-kube-api", daemon=True)
        thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path, *, namespace: str, ca: Path | None = None) -> Path:
        cluster: dict[str, Any] = {"server": self.url}
        if ca is not None:
            cluster["certificate-authority"] = str(ca)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": cluster}],
                    "users": [{"name": "engine", "user": {"token": self.token}}],
                    "contexts": [
                        {
                            "name": "double",
                            "context": {
                                "cluster": "double",
                                "user": "engine",
                                "namespace": namespace,
                            },
                        }
                    ],
                    "current-context": "double",
                }
            )
        )
        return path

    def stop(self) -> None:
        self._stopping.set()
        self.pause_api.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in list(self._threads):
            thread.join(timeout=30)
        if self.backend is not None:
            self.backend.cleanup()

    def _later(self, fn: Any, *args: Any) -> None:
        thread = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- the store -------------------------------------------------------------------------

    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (r, ns, _), o in self.objects.items()
                if r == "pods" and ns == namespace
            ]

    def pvcs(self, namespace: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (r, ns, _), o in self.objects.items()
                if r == "persistentvolumeclaims" and ns == namespace
            ]

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def set_phase(self, namespace: str, name: str, phase: str, reason: str = "") -> None:
        """Make a pod end (as if its main process exited, or the node went away)."""
        with self.lock:
            pod = self.objects[("pods", namespace, name)]
            pod["status"] = {"phase": phase, "reason": reason, "containerStatuses": []}
            self._bump(pod)

    def _authorize(self, resource: str, verb: str) -> None:
        self.used.add((resource, verb))
        if self.rbac is not None and verb not in self.rbac.get(resource, set()):
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "engine" cannot {verb} resource "{resource}"',
            )

    def _check(self, resource: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = meta.get("name") or ""
        if not _DNS_LABEL.match(name):
            raise ApiError(422, "Invalid", f"metadata.name: Invalid value: {name!r}")
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or not _LABEL_VALUE.match(value):
                raise ApiError(422, "Invalid", f"metadata.labels: Invalid value: {key}={value!r}")
        if self.validate:
            try:
                kubernetes_validate.validate(body, self.version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise ApiError(
                    422, "Invalid", f"{'.'.join(map(str, exc.path))}: {exc.message}"
                ) from exc
        if resource == "pods":
            violations = pod_security_violations(body)
            if violations:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: violates PodSecurity "restricted:latest": '
                    + ", ".join(violations),
                )

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._authorize(resource, "create")
        api_version, kind = _KINDS[resource]
        body = copy.deepcopy(body)
        body.setdefault("apiVersion", api_version)
        body.setdefault("kind", kind)
        self._check(resource, body)
        meta = body["metadata"]
        meta["namespace"] = namespace
        with self.lock:
            key = (resource, namespace, meta["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            if resource == "pods":
                body["status"] = {"phase": "Pending"}
                body["spec"]["nodeName"] = "double-node"
                body["spec"].setdefault("priority", 0)
            elif resource == "persistentvolumeclaims":
                body["status"] = {"phase": "Bound"}
            self._bump(body)
            self.objects[key] = body
            created = copy.deepcopy(body)
        if resource == "pods":
            self._later(self._run_pod, namespace, meta["name"], meta["uid"])
        return created

    def _run_pod(self, namespace: str, name: str, uid: str) -> None:
        if self._stopping.wait(self.start_delay_s):
            return
        with self.lock:
            pod = self.objects.get(("pods", namespace, name))
            if pod is None or pod["metadata"]["uid"] != uid:
                return
            body = copy.deepcopy(pod)
        status: dict[str, Any]
        try:
            image = body["spec"]["containers"][0]["image"]
            if image in self.missing_images:
                raise LookupError(f'failed to pull image "{image}": not found')
            if self.backend is not None:
                self.backend.start(namespace, body)
            status = {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": body["spec"]["containers"][0]["name"],
                        "ready": True,
                        "image": body["spec"]["containers"][0]["image"],
                        "state": {"running": {"startedAt": _now()}},
                    }
                ],
            }
        except Exception as exc:  # noqa: BLE001 - shown in the pod's status, as a kubelet would
            reason = "ErrImagePull" if isinstance(exc, LookupError) else "CreateContainerError"
            status = {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": body["spec"]["containers"][0]["name"],
                        "ready": False,
                        "state": {"waiting": {"reason": reason, "message": str(exc)}},
                    }
                ],
            }
        with self.lock:
            pod = self.objects.get(("pods", namespace, name))
            if pod is None or pod["metadata"]["uid"] != uid:
                if self.backend is not None:
                    self.backend.stop(namespace, body)
                return
            if not pod["metadata"].get("deletionTimestamp"):
                pod["status"] = status
                self._bump(pod)

    def read(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        self._authorize(resource, "get")
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            if resource == "pods":
                self._refresh(namespace, obj)
            return copy.deepcopy(obj)

    def _refresh(self, namespace: str, pod: dict[str, Any]) -> None:
        """A backing container that died makes its pod Failed, as the kubelet would."""
        if self.backend is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        if not self.backend.alive(namespace, pod):
            pod["status"] = {
                "phase": "Failed",
                "reason": "Error",
                "containerStatuses": [
                    {
                        "name": pod["spec"]["containers"][0]["name"],
                        "ready": False,
                        "state": {"terminated": {"exitCode": 137, "reason": "Error"}},
                    }
                ],
            }
            self._bump(pod)

    def list(self, resource: str, namespace: str, selector: str) -> dict[str, Any]:
        self._authorize(resource, "list")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        with self.lock:
            items = []
            for (r, ns, _), obj in self.objects.items():
                if r != resource or ns != namespace:
                    continue
                labels = obj["metadata"].get("labels") or {}
                if all(labels.get(k) == v for k, v in wanted.items()):
                    if resource == "pods":
                        self._refresh(namespace, obj)
                    items.append(copy.deepcopy(obj))
            api_version, kind = _KINDS[resource]
            return {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }

    def patch(
        self, resource: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self._authorize(resource, "patch")
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
                self.conflicts += 1
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            patched = copy.deepcopy(obj)
            _merge(patched, patch)
            self._check(resource, {k: v for k, v in patched.items() if k != "status"})
            self.objects[(resource, namespace, name)] = patched
            self._bump(patched)
            return copy.deepcopy(patched)

    def delete(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        self._authorize(resource, "delete")
        with self.lock:
            key = (resource, namespace, name)
            obj = self.objects.get(key)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            if obj["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            self._bump(obj)
            answer = copy.deepcopy(obj)
            if resource == "pods":
                self._later(self._terminate, namespace, copy.deepcopy(obj))
            elif resource == "persistentvolumeclaims":
                if self._pvc_in_use(namespace, name):
                    obj["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
                else:
                    self._drop_pvc(namespace, name)
            else:
                del self.objects[key]
            return answer

    def _terminate(self, namespace: str, pod: dict[str, Any]) -> None:
        if self.backend is not None:
            self.backend.stop(namespace, pod)
        time.sleep(self.terminate_delay_s)
        with self.lock:
            key = ("pods", namespace, pod["metadata"]["name"])
            current = self.objects.get(key)
            if current is not None and current["metadata"]["uid"] == pod["metadata"]["uid"]:
                del self.objects[key]
                self.rv += 1
            for (r, ns, pvc_name), obj in list(self.objects.items()):
                if r == "persistentvolumeclaims" and ns == namespace:
                    held = obj["metadata"].get("finalizers")
                    if held and not self._pvc_in_use(namespace, pvc_name):
                        self._drop_pvc(namespace, pvc_name)

    def _pvc_in_use(self, namespace: str, name: str) -> bool:
        for (r, ns, _), pod in self.objects.items():
            if r == "pods" and ns == namespace:
                for volume in pod["spec"].get("volumes") or []:
                    if (volume.get("persistentVolumeClaim") or {}).get("claimName") == name:
                        return True
        return False

    def _drop_pvc(self, namespace: str, name: str) -> None:
        del self.objects[("persistentvolumeclaims", namespace, name)]
        self.rv += 1
        if self.backend is not None:
            self.backend.drop_volume(namespace, name)

    # -- exec ------------------------------------------------------------------------------

    def exec_target(self, namespace: str, name: str) -> dict[str, Any]:
        self._authorize("pods/exec", "create")
        with self.lock:
            pod = self.objects.get(("pods", namespace, name))
            if pod is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            self._refresh(namespace, pod)
            phase = (pod.get("status") or {}).get("phase")
            if phase != "Running" or pod["metadata"].get("deletionTimestamp"):
                raise ApiError(400, "BadRequest", f"cannot exec into a container in a {phase} pod")
            if self.backend is None:
                raise ApiError(400, "BadRequest", "this double has no containers to exec in")
            self.execs += 1
            return copy.deepcopy(pod)


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server-to-client websocket frame (unmasked)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def _parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Complete client frames (masked) off the front of `buffer`."""
    frames = []
    while len(buffer) >= 2:
        opcode = buffer[0] & 0x0F
        masked = buffer[1] & 0x80
        n = buffer[1] & 0x7F
        offset = 2
        if n == 126:
            if len(buffer) < 4:
                break
            n = struct.unpack_from(">H", buffer, 2)[0]
            offset = 4
        elif n == 127:
            if len(buffer) < 10:
                break
            n = struct.unpack_from(">Q", buffer, 2)[0]
            offset = 10
        mask = b""
        if masked:
            if len(buffer) < offset + 4:
                break
            mask = bytes(buffer[offset : offset + 4])
            offset += 4
        if len(buffer) < offset + n:
            break
        payload = bytes(buffer[offset : offset + n])
        if mask:
            payload = (
                int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            ).to_bytes(n, "big")
        del buffer[: offset + n]
        frames.append((opcode, payload))
    return frames


def _exit_status(code: int | None, argv: list[str]) -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    if code is None:
        return json.dumps(_status(500, "InternalError", "exec ended without a status")).encode()
    status = _status(
        500,
        "NonZeroExitCode",
        f"command terminated with non-zero exit code: error executing command {argv}, "
        f"exit code {code}",
    )
    status["details"] = {"causes": [{"reason": "ExitCode", "message": str(code)}]}
    del status["code"]
    return json.dumps(status).encode()


class _Server(http.server.ThreadingHTTPServer):
    """The double's HTTP server, with a listen backlog like a real API server's: the default
    of 5 overflows when a crowd of sessions connects at once, and a dropped SYN is retried only
    after 1 s, which is the engine's connect timeout."""

    daemon_threads = True
    request_queue_size = 128


class _Handler(http.server.BaseHTTPRequestHandler):
    server_api: FakeKubeApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, in this connection's thread (see start)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _route(self, method: str) -> None:
        api = self.server_api
        while api.pause_api.is_set():  # an API server that accepts but never answers
            time.sleep(0.05)
        url = urlparse(self.path)
        api.requests.append((method, url.path))
        try:
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if url.path.rstrip("/") == "/version":
                major, minor = api.version.lstrip("v").split(".")[:2]
                self._send_json(200, {"major": major, "minor": minor, "gitVersion": api.version})
                return
            match = _PATH.match(url.path)
            if match is None:
                raise ApiError(404, "NotFound", f"the server could not find {url.path}")
            ns, resource, name, sub = match.group("ns", "resource", "name", "sub")
            if sub == "exec":
                self._exec(ns, name, parse_qs(url.query))
                return
            if method == "GET" and name:
                self._send_json(200, api.read(resource, ns, name))
            elif method == "GET":
                selector = parse_qs(url.query).get("labelSelector", [""])[0]
                self._send_json(200, api.list(resource, ns, selector))
            elif method == "POST" and not name:
                self._send_json(201, api.create(resource, ns, self._body()))
            elif method == "PATCH" and name:
                self._send_json(200, api.patch(resource, ns, name, self._body()))
            elif method == "DELETE" and name:
                self._body()
                self._send_json(200, api.delete(resource, ns, name))
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} {url.path}")
        except ApiError as exc:
            self._send_json(exc.code, _status(exc.code, exc.reason, exc.message))

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # -- the exec websocket ----------------------------------------------------------------

    def _exec(self, namespace: str, name: str, query: dict[str, list[str]]) -> None:
        api = self.server_api
        if self.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(400, "BadRequest", "Upgrade request required")
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        chosen = next((p for p in api.protocols if p in offered), None)
        if chosen is None:
            raise ApiError(400, "BadRequest", "no supported channel protocol offered")
        pod = api.exec_target(namespace, name)
        argv = query.get("command") or []
        stdin = query.get("stdin", ["false"])[0] == "true"
        try:
            channel = api.backend.open_exec(namespace, pod, argv, stdin=stdin)
        except Exception as exc:
            raise ApiError(500, "InternalError", f"exec failed: {exc}") from exc
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        self.wfile.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                f"Sec-WebSocket-Protocol: {chosen}\r\n\r\n"
            ).encode()
        )
        self.wfile.flush()
        self.close_connection = True
        try:
            _bridge(self.connection, channel, argv, v5=chosen == V5)
        finally:
            channel.close()


def _ready(
    readers: list[socket.socket], writers: list[socket.socket], timeout: float
) -> tuple[list[socket.socket], list[socket.socket]]:
    """select() for any descriptor number (select.select stops at 1024; a test process holding
    many sessions goes past that)."""
    with selectors.DefaultSelector() as selector:
        for sock in {*readers, *writers}:
            mask = (selectors.EVENT_READ if sock in readers else 0) | (
                selectors.EVENT_WRITE if sock in writers else 0
            )
            selector.register(sock, mask)
        ready = selector.select(timeout)
    readable = [key.fileobj for key, mask in ready if mask & selectors.EVENT_READ]
    writable = [key.fileobj for key, mask in ready if mask & selectors.EVENT_WRITE]
    return readable, writable  # type: ignore[return-value]


def _bridge(ws: socket.socket, channel: Any, argv: list[str], *, v5: bool) -> None:
    """Move frames between the client's websocket and a Docker exec until the exec ends."""
    docker_sock = channel._sock  # the hijacked Docker connection (non-blocking)
    ws.setblocking(False)
    tls = isinstance(ws, ssl.SSLSocket)
    inbox = bytearray()  # from the client, not yet parsed
    to_docker = bytearray()
    to_client = bytearray()
    close_stdin = False
    done = False
    while True:
        want_client = not done and len(to_docker) < _BUFFER_LIMIT
        want_docker = not done and len(to_client) < _BUFFER_LIMIT
        readers = ([ws] if want_client else []) + ([docker_sock] if want_docker else [])
        writers = ([ws] if to_client else []) + ([docker_sock] if to_docker else [])
        pending = tls and ws.pending() > 0
        if not readers and not writers:
            break
        try:
            readable, writable = _ready(readers, writers, 0 if pending else 5)
        except (OSError, ValueError):
            break
        if (ws in readable or pending) and want_client:
            try:
                chunk = ws.recv(256 * 1024)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":
                break  # the client went away
            if chunk:
                inbox += chunk
                for opcode, payload in _parse_frames(inbox):
                    if opcode == 0x8:
                        done = True
                    elif opcode in (0x1, 0x2) and payload:
                        if payload[0] == 0:
                            to_docker += payload[1:]
                        elif payload[0] == 255 and v5 and payload[1:2] == b"\x00":
                            close_stdin = True
        if to_docker and docker_sock in writable:
            try:
                del to_docker[: channel.send(to_docker)]
            except ChannelClosed:  # the process stopped reading: drop its input
                to_docker.clear()
        if close_stdin and not to_docker:
            channel.close_stdin()
            close_stdin = False
        if docker_sock in readable and want_docker:
            events = channel.read()
            if events is None:
                code = channel.exit_code()
                to_client += _frame(0x2, b"\x03" + _exit_status(code, argv))
                to_client += _frame(0x8, struct.pack(">H", 1000))
                done = True
            else:
                for stream, data in events:
                    to_client += _frame(0x2, bytes([stream]) + data)
        if to_client and (ws in writable or done):
            try:
                del to_client[: ws.send(to_client)]
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except OSError:
                break
        if done and not to_client:
            break
    with contextlib.suppress(OSError):
        ws.setblocking(True)
        ws.settimeout(1)
        ws.shutdown(socket.SHUT_RDWR)


def main() -> None:
    """Serve a Docker-backed double until SIGINT/SIGTERM, to try `make test-k8s` (or the app
    with EXECUTOR_ENGINE=kubernetes) without a cluster:

        python -m tests.kubernetes.fake_apiserver /tmp/kubeconfig [namespace]
    """
    from executor.engines.docker import DockerEngine

    from .docker_pods import DockerPods

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    path, namespace = Path(sys.argv[1]), (sys.argv[2:] or ["mce-test"])[0]
    api = FakeKubeApi(backend=DockerPods(DockerEngine(), f"mce-k8s-double-{uuid.uuid4().hex[:6]}"))
    api.start().kubeconfig(path, namespace=namespace)
    print(f"API double on {api.url}; KUBECONFIG={path}", flush=True)  # noqa: T201
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        api.stop()


if __name__ == "__main__":
    main()
