"""Every object the engine generates and every manifest in deploy/kubernetes, validated offline
with `kubernetes-validate --strict`, and each hardening field checked by name."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from executor._hardening import HOME, SANDBOX_ENVIRONMENT, WORKSPACE
from executor.engines import _k8s_objects as objects
from executor.engines.base import ContainerRequest
from executor.manager import container_name
from settings import PROJECT_ROOT, ExecutorSettings, env_variables
from tests.conftest import HOSTILE_IDS

DEPLOY = PROJECT_ROOT / "deploy" / "kubernetes"
VERSIONS = ["1.30.0", "1.33.0"]
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def validate(paths: list[Path], version: str) -> None:
    """The command the brief names, on files."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("kubernetes-validate")),
            "--strict",
            "--no-warn",
            "-k",
            version,
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout


def sandbox_request(key: str = "alice/report", **settings) -> ContainerRequest:
    spec = ExecutorSettings(**settings)
    name = container_name(spec.app_label, key)
    labels = {"mcp-code-executor.app": spec.app_label, "mcp-code-executor.user": key}
    return ContainerRequest(name, f"{name}-workspace", labels, spec, None, None)


def generated(tmp_path: Path, **settings) -> tuple[dict, dict, dict, list[Path]]:
    request = sandbox_request(**settings)
    options = objects.KubeOptions.from_settings(request.spec)
    pod = objects.pod(request, options)
    pvc = objects.pvc(request.volume, request.labels, options, request.spec.workspace_quota_bytes)
    policy = objects.network_policy(options.namespace)
    files = []
    for kind, body in (("pod", pod), ("pvc", pvc), ("np", policy)):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(body))
        files.append(path)
    return pod, pvc, policy, files


@pytest.mark.parametrize("version", VERSIONS)
def test_generated_objects_validate_strictly(tmp_path, version):
    *_, files = generated(tmp_path, k8s_runtime_class="gvisor", k8s_image_pull_secret="regcred")
    validate(files, version)


def test_the_pod_carries_every_hardening_field(tmp_path):
    pod, _, policy, _ = generated(tmp_path)
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["restartPolicy"] == "Never"
    assert "runtimeClassName" not in spec  # only when asked for
    pod_sc = spec["securityContext"]
    assert (pod_sc["runAsUser"], pod_sc["runAsGroup"], pod_sc["runAsNonRoot"]) == (1000, 1000, True)
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_sc["fsGroup"] == 1000  # the PVC is writable by the sandbox user
    [container] = spec["containers"]
    sc = container["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1000, 1000, True)
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert set(resources["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    assert resources["limits"]["memory"] == str(1 << 30)
    assert resources["limits"]["cpu"] == "1"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {
        WORKSPACE: "workspace",
        "/tmp": "tmp",
        HOME: "home",
        "/dev/shm": "shm",
        "/tools/mcp": "tools-mcp",  # code mode's modules, written by the host over the runner
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    spec_defaults = ExecutorSettings()
    for name, size in (
        ("tmp", spec_defaults.tmp_size_bytes),
        ("home", spec_defaults.home_size_bytes),
        ("shm", spec_defaults.shm_size_bytes),
        ("tools-mcp", 8 << 20),
    ):
        assert volumes[name]["emptyDir"] == {"medium": "Memory", "sizeLimit": str(size)}
    assert "/tools" not in mounts  # baked into the image, as /skills
    assert "/skills" not in mounts
    assert not any("hostPath" in v for v in spec["volumes"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        **SANDBOX_ENVIRONMENT,
        "SANDBOX_RLIMITS": f"fsize={spec_defaults.max_file_bytes},nofile=1024,core=0",
    }
    assert container["command"][:3] == ["python3", "-I", "-S"]  # the reaper, as uid 1000
    assert container["workingDir"] == WORKSPACE
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(pod["metadata"]["labels"][k] == v for k, v in selector.items())
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]  # no rule: nothing allowed
    assert "egress" not in policy["spec"]


def test_options_reach_the_objects(tmp_path):
    pod, pvc, _, _ = generated(
        tmp_path,
        k8s_namespace="team-a",
        k8s_runtime_class="gvisor",
        k8s_image_pull_policy="Always",
        k8s_image_pull_secret="regcred",
        k8s_storage_class="fast-ssd",
        k8s_pvc_size_bytes=5 << 30,
        cpu_limit=0.5,
        network_mode="bridge",
    )
    assert pod["metadata"]["namespace"] == pvc["metadata"]["namespace"] == "team-a"
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "500m"
    assert objects.SANDBOX_LABEL not in pod["metadata"]["labels"]  # network on: not denied
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert pvc["spec"]["resources"]["requests"]["storage"] == str(5 << 30)
    _, default_pvc, _, _ = generated(tmp_path, workspace_quota_bytes=3 << 30)
    assert default_pvc["spec"]["resources"]["requests"]["storage"] == str(3 << 30)
    assert "storageClassName" not in default_pvc["spec"]


@pytest.mark.parametrize("key", HOSTILE_IDS)
def test_names_are_dns_labels_derived_deterministically(key):
    for app in ("mcp-code-executor", "a.b_c-d"):
        name = container_name(app, key)
        for executor_name in (name, f"{name}-workspace", f"{app}-pool-0123456789abcdef"):
            dns = objects.dns_name(executor_name)
            assert _DNS.match(dns), dns
            assert objects.dns_name(executor_name) == dns  # deterministic
            assert objects.dns_name(dns) == dns  # a Kubernetes name maps to itself


def test_names_of_different_sessions_stay_different():
    names = {objects.dns_name(container_name("mcp-code-executor", k)) for k in HOSTILE_IDS}
    assert len(names) == len(HOSTILE_IDS)


def test_labels_kubernetes_cannot_hold_travel_in_an_annotation():
    key = "x" * 300 + ' "ü"'
    labels = {"mcp-code-executor.app": "app", "mcp-code-executor.user": key}
    kept, annotations = objects.split_labels(labels)
    assert kept == {"mcp-code-executor.app": "app"}
    meta = {"labels": kept, "annotations": annotations}
    assert objects.executor_labels(meta) == labels
    assert all(len(v) <= 63 for v in kept.values())


def test_a_respawned_pod_drops_what_the_cluster_added_and_still_validates(tmp_path):
    pod, *_ = generated(tmp_path)
    live = json.loads(json.dumps(pod))
    live["metadata"].update(
        uid="u-1", resourceVersion="7", creationTimestamp="2026-01-01T00:00:00Z"
    )
    live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied"] = "{}"
    live["spec"].update(nodeName="node-1", priority=0, schedulerName="default-scheduler")
    live["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    live["status"] = {"phase": "Failed"}
    body = objects.respawn(live)
    assert body["spec"] == pod["spec"]
    assert body["metadata"] == pod["metadata"]
    path = tmp_path / "respawn.yaml"
    path.write_text(yaml.safe_dump(body))
    validate([path], "1.33.0")


def test_a_claim_patch_carries_the_resource_version_and_keeps_engine_labels():
    meta = {
        "resourceVersion": "42",
        "labels": {
            "mcp-code-executor.app": "app",
            "mcp-code-executor.pool": "1",
            objects.SANDBOX_LABEL: "true",
        },
    }
    patch = objects.claim_patch(meta, {"mcp-code-executor.app": "app", "u": "a b"})
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["metadata"]["labels"] == {
        "mcp-code-executor.pool": None,
        "mcp-code-executor.app": "app",
    }
    assert patch["metadata"]["annotations"][objects.CLAIMED_ANNOTATION] == "true"
    assert json.loads(patch["metadata"]["annotations"][objects.LABELS_ANNOTATION]) == {"u": "a b"}


# -- deploy/kubernetes ---------------------------------------------------------------------


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_strictly(version):
    paths = [p for p in sorted(DEPLOY.glob("*.yaml")) if p.name != "kustomization.yaml"]
    validate(paths, version)


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


def test_the_namespace_enforces_the_restricted_pod_security_level():
    labels = manifests()["Namespace/mcp-code-executor"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_role_grants_only_what_the_engine_needs():
    role = manifests()["Role/mcp-code-executor-sandboxes"]
    rules = {(tuple(r["apiGroups"]), r["resources"][0]): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("",), "pods"): {"create", "get", "list", "patch", "delete"},
        (("",), "pods/exec"): {"create", "get"},
        (("",), "persistentvolumeclaims"): {"create", "get", "list", "patch", "delete"},
        (("networking.k8s.io",), "networkpolicies"): {"create", "get"},
    }
    binding = manifests()["RoleBinding/mcp-code-executor-sandboxes"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mcp-code-executor", "namespace": "mcp-code-executor"}
    ]


def test_the_app_deployment_is_wired_and_hardened():
    found = manifests()
    deployment = found["Deployment/mcp-code-executor"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mcp-code-executor"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [app] = pod["containers"]
    assert app["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["path"] == "/healthz"
    sources = {next(iter(s)): s[next(iter(s))]["name"] for s in app["envFrom"]}
    assert sources == {
        "configMapRef": "mcp-code-executor",
        "secretRef": "mcp-code-executor-secrets",
    }
    config = found["ConfigMap/mcp-code-executor"]["data"]
    assert config["EXECUTOR_ENGINE"] == "kubernetes"
    assert config["APP_HOST"] == "0.0.0.0"
    known = set(env_variables())
    assert set(config) <= known, f"unknown settings: {set(config) - known}"
    service = found["Service/mcp-code-executor"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert app["ports"][0]["containerPort"] == int(config["APP_PORT"])
