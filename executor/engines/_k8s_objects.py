"""The Kubernetes objects of a sandbox, built as plain dicts: its Pod, its workspace PVC, and the
deny-all NetworkPolicy that selects every sandbox pod. Pure functions, no API calls: the engine
(`kubernetes.py`) sends them, tests validate them offline with `kubernetes-validate --strict`.

The policy is `executor/_hardening.py`; this maps it onto the pod API, in one place:
- every process runs as 1000:1000 (`runAsNonRoot`), without privilege escalation or any
  capability, under the runtime's default seccomp profile (set explicitly: Kubernetes' own
  default is Unconfined), on a read-only root filesystem;
- no service-account token and no service environment variables (`enableServiceLinks: false`):
  nothing about the cluster is visible inside; the environment is the fixed sandbox list;
- /tmp, the home directory, /dev/shm and /tools/mcp (code mode's modules, which the host writes
  over the runner) are memory-backed emptyDirs with size limits (charged to
  the memory limit, as Docker's tmpfs mounts are); /workspace is the session's PVC;
- requests equal limits (cpu, memory, ephemeral-storage): a sandbox never bursts into a node's
  spare capacity, and is the last to be evicted;
- the pod carries the label the deny-all NetworkPolicy selects (when the network is off, the
  default), which holds only where the cluster's CNI enforces policies;
- the pod API has no ulimits: the limits go in SANDBOX_RLIMITS, which the resident runner applies
  to itself and so to every command it starts (see `_runner.py`);
- PID 1 is a tiny reaper (Python, as uid 1000): processes of the same pid namespace cannot kill a
  namespace's init, and orphans of `kill -9`'d commands are reaped instead of filling the pid
  table. Docker uses docker-init for both.
/tools and /skills are not mounted: they are baked into the image (`executor.image build --bake`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from settings import ExecutorSettings

from .._hardening import HOME, SANDBOX_ENVIRONMENT, TOOLS_MCP, TOOLS_MCP_SIZE_BYTES, WORKSPACE
from .base import ContainerRequest

CONTAINER = "sandbox"
UID = 1000
# Engine-owned label: the deny-all NetworkPolicy selects the pods that carry it.
SANDBOX_LABEL = "mcp-code-executor.sandbox"
NETWORK_POLICY = "mcp-code-executor-sandbox-deny-all"
# The executor's own name of a pod or PVC (Kubernetes names are shorter and stricter).
NAME_ANNOTATION = "mcp-code-executor.name"
# Labels whose values Kubernetes cannot hold as labels (e.g. the executor key), as JSON.
LABELS_ANNOTATION = "mcp-code-executor.labels"
# Set on a warm-pool pod by the claim that took it: a pod is claimed once, ever.
CLAIMED_ANNOTATION = "mcp-code-executor.claimed"
RLIMITS_VARIABLE = "SANDBOX_RLIMITS"
# The root filesystem is read-only and every emptyDir is memory-backed: only the container log
# (PID 1 writes nothing) uses node disk.
EPHEMERAL_STORAGE_BYTES = 64 << 20

# PID 1 of the sandbox: reap whatever is re-parented to it, and nothing else. SIGCHLD stays
# blocked and is waited for, so no exit is missed between two waits; SIGTERM keeps its default,
# which the kubelet (outside the pid namespace) can deliver and sandbox code cannot.
INIT_SOURCE = (
    "import os,signal\n"
    "try:\n"
    " import ctypes;ctypes.CDLL(None).prctl(4,0,0,0,0)\n"
    "except Exception:\n"
    " pass\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK,{signal.SIGCHLD})\n"
    "while True:\n"
    " signal.sigwaitinfo({signal.SIGCHLD})\n"
    " try:\n"
    "  while os.waitpid(-1,os.WNOHANG)[0]:\n"
    "   pass\n"
    " except ChildProcessError:\n"
    "  pass\n"
)
INIT_COMMAND = ["python3", "-I", "-S", "-c", INIT_SOURCE, "sandbox-init"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class KubeOptions:
    """Where and how sandbox objects are made (the EXECUTOR_K8S_* settings)."""

    namespace: str = "mcp-code-executor"
    storage_class: str = ""
    pvc_size_bytes: int = 0
    runtime_class: str = ""
    image_pull_policy: str = "IfNotPresent"
    image_pull_secret: str = ""

    @classmethod
    def from_settings(cls, spec: ExecutorSettings) -> KubeOptions:
        return cls(
            namespace=spec.k8s_namespace,
            storage_class=spec.k8s_storage_class,
            pvc_size_bytes=spec.k8s_pvc_size_bytes,
            runtime_class=spec.k8s_runtime_class,
            image_pull_policy=spec.k8s_image_pull_policy,
            image_pull_secret=spec.k8s_image_pull_secret,
        )


# -- names and labels ------------------------------------------------------------------------


def dns_name(name: str) -> str:
    """A DNS-1123 label (<= 63) for an executor name: the name itself when it already is one,
    else a readable slug plus a hash of the whole name. Deterministic and idempotent, so a pod
    is found from either its executor name or its Kubernetes name."""
    if _DNS_LABEL.match(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[: 63 - 13].strip("-")
    return f"{slug or 'sandbox'}-{digest}"


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return bool(_LABEL_NAME.match(name)) and (not prefix or bool(_PREFIX.match(prefix)))


def split_labels(labels: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations): what Kubernetes accepts as labels stays a label; the rest (the
    executor key, any long or unusual value) travels as JSON in one annotation."""
    kept: dict[str, str] = {}
    extra: dict[str, str] = {}
    for key, value in labels.items():
        if _label_key_ok(key) and _LABEL_VALUE.match(value):
            kept[key] = value
        else:
            extra[key] = value
    annotations = {LABELS_ANNOTATION: json.dumps(extra, sort_keys=True)} if extra else {}
    return kept, annotations


def executor_labels(metadata: dict[str, Any]) -> dict[str, str]:
    """The executor's labels of an object: its labels plus those kept in the annotation."""
    labels = dict(metadata.get("labels") or {})
    raw = (metadata.get("annotations") or {}).get(LABELS_ANNOTATION)
    if raw:
        try:
            extra = json.loads(raw)
        except ValueError:
            extra = {}
        if isinstance(extra, dict):
            labels.update({str(k): str(v) for k, v in extra.items()})
    return labels


def executor_name(metadata: dict[str, Any]) -> str:
    return (metadata.get("annotations") or {}).get(NAME_ANNOTATION) or metadata.get("name", "")


def _metadata(name: str, labels: dict[str, str], namespace: str) -> dict[str, Any]:
    kept, annotations = split_labels(labels)
    return {
        "name": dns_name(name),
        "namespace": namespace,
        "labels": kept,
        "annotations": {NAME_ANNOTATION: name, **annotations},
    }


# -- quantities -----------------------------------------------------------------------------


def cpu_quantity(cores: float) -> str:
    """Kubernetes CPU quantity: whole cores as "2", else millicores ("500m")."""
    millis = max(1, round(cores * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def rlimits(spec: ExecutorSettings) -> str:
    """The ulimits Docker sets on the container, for the runner to set on itself."""
    return f"fsize={spec.max_file_bytes},nofile={spec.nofile_limit},core=0"


# -- objects ---------------------------------------------------------------------------------


def _security_context() -> dict[str, Any]:
    return {
        "runAsUser": UID,
        "runAsGroup": UID,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod(request: ContainerRequest, options: KubeOptions) -> dict[str, Any]:
    """The hardened Pod of one sandbox."""
    spec = request.spec
    resources = {
        "cpu": cpu_quantity(spec.cpu_limit),
        "memory": str(spec.memory_limit_bytes),
        "ephemeral-storage": str(EPHEMERAL_STORAGE_BYTES),
    }
    labels = dict(request.labels)
    if spec.network_mode == "none":
        labels[SANDBOX_LABEL] = "true"
    environment = {**SANDBOX_ENVIRONMENT, RLIMITS_VARIABLE: rlimits(spec)}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "hostname": "sandbox",
        "securityContext": {
            "runAsUser": UID,
            "runAsGroup": UID,
            "runAsNonRoot": True,
            "fsGroup": UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image_name,
                "imagePullPolicy": options.image_pull_policy,
                "command": list(INIT_COMMAND),
                "workingDir": WORKSPACE,
                "env": [{"name": k, "value": v} for k, v in environment.items()],
                "securityContext": _security_context(),
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "volumeMounts": [
                    {"name": "workspace", "mountPath": WORKSPACE},
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "home", "mountPath": HOME},
                    {"name": "shm", "mountPath": "/dev/shm"},
                    {"name": "tools-mcp", "mountPath": TOOLS_MCP},
                ],
                "stdin": False,
                "tty": False,
            }
        ],
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": dns_name(request.volume)}},
            _memory_dir("tmp", spec.tmp_size_bytes),
            _memory_dir("home", spec.home_size_bytes),
            _memory_dir("shm", spec.shm_size_bytes),
            _memory_dir("tools-mcp", TOOLS_MCP_SIZE_BYTES),
        ],
    }
    if options.runtime_class:
        pod_spec["runtimeClassName"] = options.runtime_class
    if options.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": options.image_pull_secret}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(request.name, labels, options.namespace),
        "spec": pod_spec,
    }


def _memory_dir(name: str, size_bytes: int) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": str(size_bytes)}}


# What `pod()` puts in a spec; everything else in a live pod was added by the cluster.
_POD_SPEC_KEYS = (
    "automountServiceAccountToken",
    "enableServiceLinks",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "hostname",
    "securityContext",
    "containers",
    "volumes",
    "runtimeClassName",
    "imagePullSecrets",
)
_CONTAINER_KEYS = (
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "workingDir",
    "env",
    "securityContext",
    "resources",
    "volumeMounts",
    "stdin",
    "tty",
)


def respawn(live: dict[str, Any]) -> dict[str, Any]:
    """A fresh Pod body with the same name, labels and spec as a live (ended) pod, without what
    the cluster filled in (node, priority, status, ...): `start` of a stopped sandbox."""
    meta = live.get("metadata") or {}
    spec = live.get("spec") or {}
    body_spec = {k: spec[k] for k in _POD_SPEC_KEYS if k in spec}
    body_spec["containers"] = [
        {k: c[k] for k in _CONTAINER_KEYS if k in c} for c in spec.get("containers") or []
    ]
    body_spec["volumes"] = [
        {k: v[k] for k in ("name", "persistentVolumeClaim", "emptyDir") if k in v}
        for v in spec.get("volumes") or []
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if k in (NAME_ANNOTATION, LABELS_ANNOTATION, CLAIMED_ANNOTATION)
            },
        },
        "spec": body_spec,
    }


def pvc(name: str, labels: dict[str, str], options: KubeOptions, size_bytes: int) -> dict[str, Any]:
    """The workspace PVC of one session (ReadWriteOnce: one pod mounts it at a time)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(options.pvc_size_bytes or size_bytes)}},
    }
    if options.storage_class:
        spec["storageClassName"] = options.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(name, labels, options.namespace),
        "spec": spec,
    }


def network_policy(namespace: str) -> dict[str, Any]:
    """Deny every ingress and egress of every sandbox pod in the namespace (no rules = nothing
    allowed, DNS included). Enforced only by a CNI that implements NetworkPolicy."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NETWORK_POLICY,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "mcp-code-executor"},
        },
        "spec": {
            "podSelector": {"matchLabels": {SANDBOX_LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def label_patch(current: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """A merge patch that makes an object's executor labels exactly `labels` (engine-owned
    labels stay)."""
    kept, annotations = split_labels(labels)
    old = current.get("labels") or {}
    patch_labels: dict[str, str | None] = {
        k: None for k in old if k not in kept and k != SANDBOX_LABEL
    }
    patch_labels.update(kept)
    return {
        "metadata": {
            "labels": patch_labels,
            "annotations": {LABELS_ANNOTATION: annotations.get(LABELS_ANNOTATION)},
        }
    }


def claim_patch(current: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The label patch of a pool claim, marked claimed, carrying the resourceVersion it was
    read at: the API server applies it only if nobody changed the pod since (else 409)."""
    patch = label_patch(current, labels)
    patch["metadata"]["annotations"][CLAIMED_ANNOTATION] = "true"
    patch["metadata"]["resourceVersion"] = current.get("resourceVersion")
    return patch
