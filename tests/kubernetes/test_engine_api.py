"""The Kubernetes engine against the stateful API double (no Docker): what it creates, how a
new process adopts it, pool claims racing across app replicas, stop/resume on the same PVC,
cleanup, least-privilege RBAC, and the errors a user sees.

The double refuses what a real API server would: every object is schema-validated strictly
(422), every pod must meet the `restricted` Pod Security level (403), and every call must be
allowed by the Role in deploy/kubernetes/rbac.yaml (403).
"""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from kubernetes import client as k8s

from executor import DockerExecutionClient
from executor._container import SandboxContainer
from executor.engines import _k8s_objects as objects
from executor.engines import make_engine
from executor.engines.base import ContainerRequest
from executor.engines.kubernetes import KubernetesEngine, load_configuration
from executor.errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ImageNotFoundError,
    SandboxUnavailableError,
)
from executor.manager import APP_LABEL, USER_LABEL, SandboxManager, container_name
from executor.pool import POOL_LABEL, WarmPool
from settings import ExecutorSettings

from .conftest import NAMESPACE, RBAC, configuration_for
from .conftest import make_engine as engine_on
from .fake_apiserver import FakeKubeApi, role_rules

APP = "mcp-code-executor-t"
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def spec(**settings) -> ExecutorSettings:
    settings.setdefault("app_label", APP)
    settings.setdefault("k8s_namespace", NAMESPACE)
    settings.setdefault("pool_size", 0)
    return ExecutorSettings(**settings)


def session(key: str, **settings) -> ContainerRequest:
    name = container_name(APP, key)
    labels = {APP_LABEL: APP, USER_LABEL: key}
    return ContainerRequest(name, f"{name}-workspace", labels, spec(**settings), None, None)


def container_of(engine: KubernetesEngine, key: str, **settings) -> SandboxContainer:
    request = session(key, **settings)
    return SandboxContainer(
        engine,
        request.spec,
        key=key,
        name=request.name,
        volume=request.volume,
        labels=request.labels,
        tools_path=None,
        skills_path=None,
    )


def test_a_session_is_a_hardened_pod_on_its_own_pvc_behind_the_deny_all_policy(double, engine_of):
    engine = engine_of()
    key = 'alice/"quarterly report" ü'
    request = session(key)
    ref = engine.create(request)

    pod = double.get("pods", NAMESPACE, ref)
    assert _DNS.match(ref)
    assert ref == objects.dns_name(request.name) != request.name  # the executor's is too long
    meta = pod["metadata"]
    assert meta["annotations"][objects.NAME_ANNOTATION] == request.name
    assert USER_LABEL not in meta["labels"]  # a key is no label value: it is an annotation
    assert objects.executor_labels(meta)[USER_LABEL] == key
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    pvc = double.get("persistentvolumeclaims", NAMESPACE, claim)
    assert pvc["metadata"]["annotations"][objects.NAME_ANNOTATION] == request.volume
    policy = double.get("networkpolicies", NAMESPACE, objects.NETWORK_POLICY)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(meta["labels"].get(k) == v for k, v in selector.items())
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]

    info = engine.inspect(request.name)
    assert info == engine.inspect(ref)
    assert (info.name, info.running, info.image_id) == (request.name, True, request.spec.image_name)
    assert engine.list({APP_LABEL: APP, USER_LABEL: key}) == [info]
    assert engine.list({APP_LABEL: APP, USER_LABEL: "someone else"}) == []
    assert [v.name for v in engine.list_volumes({APP_LABEL: APP})] == [request.volume]


def test_a_new_process_adopts_the_sandboxes_it_finds_by_labels(double, engine_of, tmp_path):
    first = SandboxManager(engine_of(), spec(state_dir=tmp_path), tools_path=None, skills_path=None)
    first.start()
    key = "bob/chat-1"
    pod_name = first.get(key).container.ensure_running()
    first.close()

    creates = sum(1 for method, path in double.requests if method == "POST")
    second = SandboxManager(
        engine_of(), spec(state_dir=tmp_path), tools_path=None, skills_path=None
    )
    second.start()  # the start-up sweep
    container = second.get(key).container
    assert container.id == pod_name
    assert container.ensure_running() == pod_name
    assert sum(1 for method, path in double.requests if method == "POST") == creates
    second.close()


def race(ref: str, claimants: dict[str, tuple[KubernetesEngine, dict[str, str]]]) -> dict:
    """Every claimant claims `ref` at the same moment; who won."""
    barrier = threading.Barrier(len(claimants))
    won: dict[str, bool] = {}

    def claim(who: str) -> None:
        engine, labels = claimants[who]
        barrier.wait()
        won[who] = engine.claim(ref, labels)

    threads = [threading.Thread(target=claim, args=(who,)) for who in claimants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


def test_of_two_replicas_claiming_the_same_pool_pod_exactly_one_wins(double, engine_of):
    owner, replica_a, replica_b = engine_of(), engine_of(), engine_of()
    for round_ in range(8):
        member = ContainerRequest(
            f"{APP}-pool-{round_:04d}",
            f"{APP}-pool-{round_:04d}-workspace",
            {APP_LABEL: APP, POOL_LABEL: "1"},
            spec(),
            None,
            None,
        )
        ref = owner.create(member)
        labels = {
            "a": {APP_LABEL: APP, USER_LABEL: f"ann/{round_}"},
            "b": {APP_LABEL: APP, USER_LABEL: f"ben/{round_}"},
        }
        won = race(ref, {"a": (replica_a, labels["a"]), "b": (replica_b, labels["b"])})
        assert sorted(won.values()) == [False, True], won
        winner = next(who for who, ok in won.items() if ok)
        pod = double.get("pods", NAMESPACE, ref)
        assert objects.executor_labels(pod["metadata"]) == {
            **labels[winner],
            objects.SANDBOX_LABEL: "true",
        }
        pvc = double.get("persistentvolumeclaims", NAMESPACE, objects.dns_name(member.volume))
        assert objects.executor_labels(pvc["metadata"]) == labels[winner]
        assert not replica_a.claim(ref, labels["a"])  # claimed once, ever
        assert owner.list({APP_LABEL: APP, POOL_LABEL: "1"}) == []
    assert double.conflicts > 0  # the resourceVersion decided races, not only the order


def test_a_pool_member_another_replica_took_is_skipped_and_left_alone(double, engine_of):
    ours, theirs = engine_of(), engine_of()
    pool = WarmPool(
        ours,
        spec(pool_check_interval_s=0.2),
        size=2,
        labels={APP_LABEL: APP},
        tools_path=None,
        skills_path=None,
    )
    pool.start()
    try:
        wait_until(lambda: pool.ready() == 2)
        members = [info.id for info in ours.list({APP_LABEL: APP, POOL_LABEL: "1"})]
        assert len(members) == 2
        for ref in members:  # the other replica is quicker, twice
            assert theirs.claim(ref, {APP_LABEL: APP, USER_LABEL: "theirs"})

        assert pool.claim({APP_LABEL: APP, USER_LABEL: "ours"}) is None  # both skipped
        for ref in members:  # theirs now: neither removed nor relabelled
            labels = objects.executor_labels(double.get("pods", NAMESPACE, ref)["metadata"])
            assert labels[USER_LABEL] == "theirs"

        wait_until(lambda: pool.ready() >= 1)  # the pool makes new members for itself
        member = pool.claim({APP_LABEL: APP, USER_LABEL: "ours"})
        assert member is not None
        assert member.container_id not in members
        labels = objects.executor_labels(
            double.get("pods", NAMESPACE, member.container_id)["metadata"]
        )
        assert labels[USER_LABEL] == "ours"
    finally:
        pool.close()


def wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_stop_deletes_the_pod_keeps_the_pvc_and_the_next_use_resumes_on_it(double, engine_of):
    engine = engine_of()
    container = container_of(engine, "carol/notes")
    ref = container.ensure_running()
    before = double.get("pods", NAMESPACE, ref)

    container.stop()  # returns once the pod is gone (it is Terminating for a while first)

    assert double.get("pods", NAMESPACE, ref) is None
    claim = objects.dns_name(container.volume)
    assert double.get("persistentvolumeclaims", NAMESPACE, claim) is not None
    assert container.ensure_running() == ref
    after = double.get("pods", NAMESPACE, ref)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["volumes"] == before["spec"]["volumes"]


def test_an_ended_pod_is_started_again_as_a_new_pod_on_the_same_pvc(double, engine_of):
    engine = engine_of()
    container = container_of(engine, "dave/analysis")
    ref = container.ensure_running()
    before = double.get("pods", NAMESPACE, ref)
    double.set_phase(NAMESPACE, ref, "Failed", "Evicted")
    assert not engine.inspect(ref).running
    container.running = False

    assert container.ensure_running() == ref  # through Engine.start: a respawn

    after = double.get("pods", NAMESPACE, ref)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["containers"] == before["spec"]["containers"]
    assert after["spec"]["volumes"] == before["spec"]["volumes"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]


def test_cleanup_removes_every_pod_and_pvc_of_the_app(double, engine_of, tmp_path):
    manager = SandboxManager(
        engine_of(), spec(state_dir=tmp_path), tools_path=None, skills_path=None
    )
    manager.start()
    for key in ("erin/1", "erin/2"):
        manager.get(key).container.ensure_running()
    other = engine_of().create(  # another app in the same namespace: left alone
        ContainerRequest("other-app-x", "other-app-x-ws", {APP_LABEL: "other"}, spec(), None, None)
    )

    manager.remove_all(volumes=True)

    assert [p["metadata"]["name"] for p in double.pods(NAMESPACE)] == [other]
    assert [p["metadata"]["name"] for p in double.pvcs(NAMESPACE)] == ["other-app-x-ws"]


def test_a_workspace_removed_while_in_use_goes_when_its_pod_goes_and_can_be_made_anew(
    double, engine_of
):
    engine = engine_of()
    request = session("frank/x")
    ref = engine.create(request)
    engine.remove_volume(request.volume)  # held by pvc-protection while the pod uses it
    assert engine.list_volumes({APP_LABEL: APP}) == []
    engine.remove(ref)
    assert double.pvcs(NAMESPACE) == []
    engine.ensure_volume(request.volume, request.labels, 1 << 20)
    assert [v.name for v in engine.list_volumes({APP_LABEL: APP})] == [request.volume]


def test_the_role_allows_exactly_the_calls_the_engine_makes(double, engine_of, tmp_path):
    engine = engine_of()
    manager = SandboxManager(engine, spec(state_dir=tmp_path), tools_path=None, skills_path=None)
    manager.start()
    container = manager.get("grace/1").container
    ref = container.ensure_running()
    pool_member = engine.create(
        ContainerRequest(f"{APP}-pool-1", f"{APP}-pool-1-ws", {APP_LABEL: APP}, spec(), None, None)
    )
    assert engine.claim(pool_member, {APP_LABEL: APP, USER_LABEL: "heidi"})
    container.stop()
    manager.remove_all(volumes=True)

    granted = {(r, v) for r, verbs in role_rules(RBAC).items() for v in verbs}
    exec_verbs = {("pods/exec", "create"), ("pods/exec", "get")}  # the exec tier uses these
    assert double.used <= granted
    assert double.used == granted - exec_verbs, "the Role grants verbs the engine never uses"
    assert ref


def test_a_missing_verb_is_an_error_that_names_the_role(tmp_path):
    rules = role_rules(RBAC)
    rules["pods"] = rules["pods"] - {"create"}
    api = FakeKubeApi(rbac=rules).start()
    try:
        engine = engine_on(configuration_for(api, tmp_path))
        with pytest.raises(EngineError, match=r"cannot create.*deploy/kubernetes/rbac\.yaml"):
            engine.create(session("ivan/1"))
    finally:
        api.stop()


def test_an_image_the_cluster_cannot_pull_is_image_not_found_and_leaves_no_pod(tmp_path):
    api = FakeKubeApi(missing_images=frozenset({"registry.example/nope:1"})).start()
    try:
        engine = engine_on(configuration_for(api, tmp_path))
        with pytest.raises(ImageNotFoundError, match="--bake"):
            engine.create(session("judy/1", image_name="registry.example/nope:1"))
        assert api.pods(NAMESPACE) == []
    finally:
        api.stop()


def test_a_pod_that_never_starts_is_given_up_after_the_start_timeout(tmp_path):
    api = FakeKubeApi(start_delay_s=30).start()
    try:
        engine = engine_on(configuration_for(api, tmp_path))
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"did not start within 0\.5 s"):
            engine.create(session("ken/1", k8s_start_timeout_s=0.5))
        assert time.monotonic() - started < 5
        assert api.pods(NAMESPACE) == []
    finally:
        api.stop()


def test_exec_into_a_missing_or_a_starting_pod_says_which(tmp_path):
    api = FakeKubeApi(start_delay_s=30).start()
    try:
        engine = engine_on(configuration_for(api, tmp_path))
        with pytest.raises(ContainerNotFoundError):
            engine.open_exec("no-such-pod", ["true"], stdin=False)
        body = objects.pod(session("liam/1"), objects.KubeOptions(namespace=NAMESPACE))
        api.create("pods", NAMESPACE, body)  # Pending for the next 30 s
        info = engine.inspect(body["metadata"]["name"])
        assert (info.running, info.status) == (False, "Pending")
        with pytest.raises(ContainerConflictError):
            engine.open_exec(body["metadata"]["name"], ["true"], stdin=False)
    finally:
        api.stop()


def test_an_api_server_that_is_not_there_is_unavailable_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    engine = KubernetesEngine(spec(), configuration=configuration)
    for call in (
        engine.ping,
        lambda: engine.list({APP_LABEL: APP}),
        lambda: engine.open_exec("x", ["true"], stdin=False),
    ):
        started = time.monotonic()
        with pytest.raises(SandboxUnavailableError, match="cannot reach the Kubernetes API"):
            call()
        assert time.monotonic() - started < 1.5


def test_an_api_server_that_does_not_answer_is_unavailable_within_seconds(double, engine_of):
    engine = engine_of()
    engine.ping()
    double.pause_api.set()
    started = time.monotonic()
    with pytest.raises(SandboxUnavailableError):
        engine.ping()
    assert time.monotonic() - started < 3.5


def test_kubeconfig_is_the_fallback_outside_a_cluster(double, tmp_path, monkeypatch):
    path = double.kubeconfig(tmp_path / "config", namespace=NAMESPACE)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert load_configuration().host == double.url
    engine = make_engine("kubernetes", spec=spec())
    assert isinstance(engine, KubernetesEngine)
    assert engine.version() == f"Kubernetes v1.33.0 (namespace {NAMESPACE})"


async def test_executor_engine_kubernetes_selects_this_engine(double, tmp_path, monkeypatch):
    path = double.kubeconfig(tmp_path / "config", namespace=NAMESPACE)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    client = DockerExecutionClient(
        engine="kubernetes",
        k8s_namespace=NAMESPACE,
        app_label=APP,
        pool_size=0,
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
    )
    inventory = await client.inventory()
    assert inventory.engine == f"Kubernetes v1.33.0 (namespace {NAMESPACE})"
    assert (inventory.sessions, inventory.volumes) == (0, 0)
