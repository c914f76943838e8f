"""deploy/kubernetes/: what `kubectl apply -k deploy/kubernetes/` creates. The core kinds are validated
against Kubernetes 1.30's schemas (the `kubernetes-validate` package, dev extras; strict: an unknown or
misspelt field fails); the Prometheus Operator's kinds are checked for what Prometheus then does (job,
instance, the rules). The DaemonSet must read the host as the README and the systemd unit say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy/kubernetes"
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
UNIT = ROOT / "deploy/systemd/ssh-access-exporter.service"
KUBERNETES_VERSION = "1.30.0"
CORE_KINDS = {"Namespace", "ServiceAccount", "DaemonSet", "Service"}
STATE_DIR = "/var/lib/ssh-access-exporter"


def _kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return document


def _resources() -> dict[str, dict[str, Any]]:
    """The resources the kustomization lists, by kind (one of each)."""
    by_kind: dict[str, dict[str, Any]] = {}
    for name in _kustomization()["resources"]:
        documents = [doc for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]
        assert len(documents) == 1, f"{name}: one resource per file"
        document = documents[0]
        assert document["kind"] not in by_kind, f"{name}: a second {document['kind']}"
        by_kind[document["kind"]] = document
    return by_kind


def _pod() -> dict[str, Any]:
    pod: dict[str, Any] = _resources()["DaemonSet"]["spec"]["template"]["spec"]
    return pod


def _container() -> dict[str, Any]:
    (container,) = _pod()["containers"]
    assert isinstance(container, dict)
    return container


def _job() -> str:
    """The job the rules select: the scrape job of the example Prometheus config."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job: str = config["scrape_configs"][0]["job_name"]
    assert f'job="{job}"' in RULES.read_text()
    return job


def test_kustomization_lists_every_manifest_and_each_exists() -> None:
    kustomization = _kustomization()
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "ssh-access-exporter"
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert set(_resources()) == CORE_KINDS | {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("kind", sorted(CORE_KINDS))
def test_core_kinds_are_valid_kubernetes(kind: str) -> None:
    kubernetes_validate.validate(_resources()[kind], KUBERNETES_VERSION, strict=True)


def test_validation_refuses_a_misspelt_field() -> None:
    """The check above has teeth: `hostPid` for `hostPID` would be dropped silently by the API server."""
    daemonset = _resources()["DaemonSet"]
    pod = daemonset["spec"]["template"]["spec"]
    pod["hostPid"] = pod.pop("hostPID")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBERNETES_VERSION, strict=True)


def test_namespace_admits_host_namespaces() -> None:
    """hostPID, hostNetwork and hostPath volumes pass Pod Security admission only at `privileged`."""
    namespace = _resources()["Namespace"]
    assert namespace["metadata"]["name"] == _kustomization()["namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_daemonset_reads_the_host_under_host() -> None:
    pod, container = _pod(), _container()
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    assert {"--path.rootfs=/host", "--path.procfs=/host/proc"} <= set(container["args"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert volumes[mounts["/host"]["name"]]["hostPath"]["path"] == "/"
    assert volumes[mounts["/host/proc"]["name"]]["hostPath"]["path"] == "/proc"
    for path, mount in mounts.items():
        if "hostPath" in volumes[mount["name"]] and path != STATE_DIR:
            assert mount.get("readOnly") is True, f"{path}: host mounts are read-only"
    assert f"--collector.authlog.state-dir={STATE_DIR}" in container["args"]
    assert volumes[mounts[STATE_DIR]["name"]]["hostPath"]["path"] == STATE_DIR


def test_daemonset_has_the_systemd_units_capabilities_and_no_more() -> None:
    """Root cut to the unit's capabilities (each one's reason is written there and in the README's
    Permissions section), on a read-only root filesystem. Two differ, for one reason: the unit runs as a
    dynamic user, which needs CAP_DAC_OVERRIDE to connect to fail2ban's root-only socket, while the pod
    runs as uid 0, which owns that socket and needs only CAP_DAC_READ_SEARCH to read other owners' files;
    and the pod keeps CAP_NET_RAW for legacy iptables tables, which the unit adds back by a drop-in."""
    bounding = re.search(r"^CapabilityBoundingSet=(.+)$", UNIT.read_text(), re.MULTILINE)
    assert bounding is not None
    security = _container()["securityContext"]
    assert security["capabilities"]["drop"] == ["ALL"]
    pod_only = {"CAP_DAC_READ_SEARCH", "CAP_NET_RAW"}
    expected = (set(bounding.group(1).split()) - {"CAP_DAC_OVERRIDE"}) | pod_only
    assert {f"CAP_{name}" for name in security["capabilities"]["add"]} == expected
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("privileged", False) is False
    pod_security = _pod()["securityContext"]
    assert pod_security["runAsUser"] == 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_daemonset_runs_on_every_node() -> None:
    assert {"operator": "Exists"} in _pod()["tolerations"]
    assert "nodeSelector" not in _pod() and "affinity" not in _pod()


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number: CPU in cores, memory in bytes."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_resources_are_bounded_above_the_benchmarked_memory() -> None:
    """docs/benchmarks.md: RSS 35-42 MiB in use, 95.5 MiB the highest peak ever measured under load."""
    resources = _container()["resources"]
    for name in ("cpu", "memory"):
        assert _quantity(resources["requests"][name]) <= _quantity(resources["limits"][name])
    assert _quantity(resources["requests"]["memory"]) >= 42 * 2**20
    assert _quantity(resources["limits"]["memory"]) >= 96 * 2**20


def test_probes_connect_to_the_metrics_port() -> None:
    """TCP probes: `/` and /metrics may run a whole scrape, other paths answer 404."""
    container = _container()
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": 9822, "protocol": "TCP"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "metrics"}, probe


def test_service_selects_the_pods_on_9822() -> None:
    service = _resources()["Service"]
    pod_labels = _resources()["DaemonSet"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["clusterIP"] == "None"
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9822, "metrics")


def test_servicemonitor_names_the_job_and_the_node() -> None:
    monitor, service = _resources()["ServiceMonitor"], _resources()["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The job is the value of the Service's jobLabel label: the job every rule selects.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == _job()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    instance = [rule for rule in endpoint["relabelings"] if rule["targetLabel"] == "instance"]
    assert instance == [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance", "action": "replace"}
    ]


def test_prometheusrule_groups_are_the_rules_file() -> None:
    rule = _resources()["PrometheusRule"]
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_kustomization_sets_the_daemonsets_image() -> None:
    (image,) = _kustomization()["images"]
    assert image["name"] == _container()["image"]
    assert image["newName"] and image["newTag"]


def test_kustomize_build() -> None:
    """What `kubectl apply -k` sends: every resource in the namespace, the image set, still valid."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed; the kustomization is checked in Python above")
    proc = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    built = {doc["kind"]: doc for doc in yaml.safe_load_all(proc.stdout) if doc}
    assert set(built) == set(_resources())
    for kind, document in built.items():
        if kind != "Namespace":
            assert document["metadata"]["namespace"] == "ssh-access-exporter", kind
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ssh-access-exporter", kind
        if kind in CORE_KINDS:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    (image,) = _kustomization()["images"]
    (container,) = built["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"
    # Labels are added to the pods, never to the selector, which cannot change once the DaemonSet exists.
    assert built["DaemonSet"]["spec"]["selector"] == _resources()["DaemonSet"]["spec"]["selector"]
