"""A real Kubernetes control plane for the tests: etcd, kube-apiserver and kube-controller-manager.

A pytest plugin (``tests/conftest.py`` loads it), so any test folder can ask for the session
fixture ``kube_cluster``. It starts, on 127.0.0.1 and free ports:

- etcd (one member, data in a temporary folder);
- kube-apiserver with token authentication (an admin in ``system:masters`` and a plain user),
  ``Node,RBAC`` authorization, service-account token signing keys, an audit log, and the Pod
  Security admission (``baseline`` by default; a namespace labelled
  ``pod-security.kubernetes.io/enforce: restricted`` — like ``sluice`` — gets ``restricted``);
- kube-controller-manager with the Deployment, ReplicaSet, Job, namespace, service-account and
  service-account-token controllers.

There is no kubelet and no scheduler: pods stay Pending unless a test plays the kubelet
(``Cluster.mark_pods_ready``). The Knative CRDs from ``../shared/schemas/knative`` (beside the
checkout; ``$SLUICE_SHARED`` overrides) and a minimal Istio VirtualService CRD
(``tests/support/kube/crds``) are installed.

The binaries come from ``tests/support/kube/build.sh`` (a cache outside the clone). When they cannot be
built the fixture FAILS the tests that need it: a missing cluster is an error, never a skip.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from sluice.embedded.broker.processes import free_port

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
BUILD_SCRIPT = HERE / "build.sh"
START_TIMEOUT_S = 180.0
BUILD_TIMEOUT_S = 3600.0
ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
USER_TOKEN = "alice-" + uuid.uuid4().hex


def shared_knative_dir() -> Path:
    """Where the Knative CRDs are: ``$SLUICE_SHARED/schemas/knative`` or ``../shared`` beside the clone."""
    base = Path(os.environ["SLUICE_SHARED"]) if os.environ.get("SLUICE_SHARED") else REPO.parent / "shared"
    return base / "schemas" / "knative"


def wait_until(probe: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; ``AssertionError`` naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)


def kube_binaries() -> Path:
    """The folder holding etcd, kube-apiserver, kube-controller-manager and kubectl (built if missing)."""
    try:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"tests/support/kube/build.sh did not finish within {BUILD_TIMEOUT_S:g} s: {err}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            "the Kubernetes binaries for the cluster tests could not be built (tests/support/kube/build.sh exited "
            f"{done.returncode}):\n{done.stderr[-4000:]}",
            pytrace=False,
        )
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)


@dataclass(frozen=True)
class AuditEntry:
    """One request from the audit log."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    uri: str


@dataclass
class Cluster:
    """A running control plane: its URL, CA, tokens, kubeconfig and helpers for the tests."""

    url: str
    ca_file: Path
    kubeconfig: Path
    bin_dir: Path
    root: Path
    knative_crds: bool
    processes: list[_Process] = field(default_factory=list)

    admin_token: str = ADMIN_TOKEN
    user_token: str = USER_TOKEN

    # --- clients --------------------------------------------------------------------------------

    def configuration(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.Configuration`` authenticating with ``token`` (default: the admin)."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.url
        conf.ssl_ca_cert = str(self.ca_file)
        conf.verify_ssl = True
        conf.api_key = {"authorization": token or self.admin_token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return conf

    def api_client(self, token: str | None = None) -> Any:
        from kubernetes import client

        return client.ApiClient(self.configuration(token))

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, token: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run this cluster's ``kubectl`` (the admin, or ``token``); ``AssertionError`` with its output on failure."""
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        if token:
            cmd += ["--token", token]
        done = subprocess.run(cmd + list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A real token for ServiceAccount ``namespace/name`` (TokenRequest API, signed by the server)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
        answer = core.create_namespaced_service_account_token(name, namespace, request)
        return str(answer.status.token)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        # the ServiceAccount admission plugin refuses pods until the controller made "default"
        wait_until(
            lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
            60, f"ServiceAccount default in namespace {name} (serviceaccount controller)",
        )
        return name

    def unique_namespace(self, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
        return self.create_namespace(f"{prefix}-{uuid.uuid4().hex[:8]}", labels)

    # --- playing the kubelet -------------------------------------------------------------------

    def pods(self, namespace: str, selector: str = "") -> list[Any]:
        from kubernetes import client

        return list(client.CoreV1Api(self.api_client()).list_namespaced_pod(namespace, label_selector=selector).items)

    def mark_pods_ready(self, namespace: str, selector: str = "") -> int:
        """Play the kubelet once: every pod matching ``selector`` gets Running and Ready."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        return sum(self.mark_pod_ready(core, pod) for pod in self.pods(namespace, selector))

    @staticmethod
    def mark_pod_ready(core: Any, pod: Any) -> bool:
        """Set ``pod``'s status to Running, Ready, every container started (False when it already was)."""
        if pod.metadata.deletion_timestamp:
            return False
        if any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])):
            return False
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "10.1.0.1",
            "startTime": now,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": c.name,
                    "image": c.image,
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in pod.spec.containers
            ],
        }
        # no node, so no kubelet credentials: the admin writes the status subresource
        core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})
        return True

    # --- the audit log: what each user really asked, and the answer -----------------------------

    def audit(self, username: str, namespace: str | None = None) -> list[AuditEntry]:
        """The requests ``username`` made (optionally in ``namespace``), from the API server's audit log."""
        out = []
        for line in (self.root / "audit.log").read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if (event.get("user") or {}).get("username") != username:
                continue
            ref = event.get("objectRef") or {}
            if namespace is not None and ref.get("namespace") != namespace:
                continue
            out.append(
                AuditEntry(
                    verb=str(event.get("verb")),
                    group=str(ref.get("apiGroup") or ""),
                    resource=str(ref.get("resource") or ""),
                    subresource=str(ref.get("subresource") or ""),
                    namespace=str(ref.get("namespace") or ""),
                    name=str(ref.get("name") or ""),
                    code=int((event.get("responseStatus") or {}).get("code") or 0),
                    uri=str(event.get("requestURI") or ""),
                )
            )
        return out

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


class Kubelet:
    """Plays the kubelet in a background thread: marks the pods of ``namespace`` Ready as they appear.

    ``accept(pod)`` chooses the pods that start (the others stay Pending, as with an image that
    cannot be pulled). A context manager; the thread stops on exit.
    """

    def __init__(self, cluster: Cluster, namespace: str, accept: Callable[[Any], bool] | None = None) -> None:
        import threading

        self.cluster = cluster
        self.namespace = namespace
        self.accept = accept or (lambda pod: True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-{namespace}", daemon=True)
        self.errors: list[BaseException] = []

    def _run(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.cluster.api_client())
        while not self._stop.is_set():
            try:
                for pod in core.list_namespaced_pod(self.namespace).items:
                    if self.accept(pod):
                        self.cluster.mark_pod_ready(core, pod)
            except client.ApiException as err:
                if err.status not in (404, 409):
                    self.errors.append(err)
            except BaseException as err:  # reported by __exit__
                self.errors.append(err)
                return
            self._stop.wait(0.3)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self.errors, f"the test kubelet failed: {self.errors[0]!r}"


def _write_keys(root: Path) -> tuple[Path, Path]:
    key, pub = root / "sa.key", root / "sa.pub"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    return key, pub


def _start(name: str, cmd: list[str], root: Path) -> _Process:
    log = root / f"{name}.log"
    handle = log.open("wb")
    popen = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    handle.close()
    return _Process(name, popen, log)


def _write_admission_config(root: Path) -> Path:
    path = root / "admission.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [
                    {
                        "name": "PodSecurity",
                        "configuration": {
                            "apiVersion": "pod-security.admission.config.k8s.io/v1",
                            "kind": "PodSecurityConfiguration",
                            "defaults": {
                                "enforce": "baseline",
                                "enforce-version": "latest",
                            },
                            "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]},
                        },
                    }
                ],
            }
        )
    )
    return path


def _write_audit_policy(root: Path) -> Path:
    """Every request at level Metadata, once (ResponseComplete): who did what to which resource, and the answer."""
    path = root / "audit-policy.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived", "ResponseStarted"],
                "rules": [{"level": "Metadata"}],
            }
        )
    )
    return path


def _kubeconfig(path: Path, url: str, ca: Path, token: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(ca)}}],
                "users": [{"name": "admin", "user": {"token": token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin", "namespace": "default"}}],
                "current-context": "test",
            }
        )
    )


def _get(url: str, ca: Path, token: str) -> tuple[int, str]:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as err:
        return 0, str(err)


def start_cluster(root: Path) -> Cluster:
    """Start etcd, kube-apiserver and kube-controller-manager in ``root``; install the CRDs."""
    bin_dir = kube_binaries()
    processes: list[_Process] = []
    try:
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd = _start(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=test",
                f"--data-dir={root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            root,
        )
        processes.append(etcd)
        key, pub = _write_keys(root)
        tokens = root / "tokens.csv"
        tokens.write_text(f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n{USER_TOKEN},alice,alice-uid\n')
        certs = root / "certs"
        certs.mkdir()
        url = f"https://127.0.0.1:{api_port}"
        apiserver = _start(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={certs}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC",
                "--anonymous-auth=false",
                f"--service-account-key-file={pub}",
                f"--service-account-signing-key-file={key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--endpoint-reconciler-type=none",
                f"--admission-control-config-file={_write_admission_config(root)}",
                f"--audit-policy-file={_write_audit_policy(root)}",
                f"--audit-log-path={root / 'audit.log'}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity",
                "--allow-privileged=false",
                "--v=1",
            ],
            root,
        )
        processes.append(apiserver)
        ca = certs / "apiserver.crt"

        def ready() -> bool:
            for process in processes:
                process.check_alive()
            if not ca.exists():
                return False
            return _get(f"{url}/readyz", ca, ADMIN_TOKEN)[0] == 200

        wait_until(ready, START_TIMEOUT_S, "kube-apiserver /readyz", poll_s=0.5)
        kubeconfig = root / "kubeconfig"
        _kubeconfig(kubeconfig, url, ca, ADMIN_TOKEN)
        manager = _start(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                "--controllers=deployment-controller,replicaset-controller,job-controller,namespace-controller,"
                "serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller",
                f"--service-account-private-key-file={key}",
                f"--root-ca-file={ca}",
                "--concurrent-deployment-syncs=2",
                "--v=1",
            ],
            root,
        )
        processes.append(manager)
        cluster = Cluster(url=url, ca_file=ca, kubeconfig=kubeconfig, bin_dir=bin_dir, root=root, knative_crds=False,
                          processes=processes)

        def controllers_up() -> bool:
            for process in processes:
                process.check_alive()
            code, _ = _get(f"{url}/api/v1/namespaces/default/serviceaccounts/default", ca, ADMIN_TOKEN)
            return code == 200

        wait_until(controllers_up, START_TIMEOUT_S, "the serviceaccount controller (ServiceAccount default/default)", 0.5)
        _install_crds(cluster)
        return cluster
    except BaseException:
        for process in reversed(processes):
            process.stop()
        raise


def _install_crds(cluster: Cluster) -> None:
    files = [HERE / "crds" / "istio-virtualservice.yaml"]
    knative = shared_knative_dir()
    if knative.is_dir():
        files += sorted(knative.glob("*.yaml"))
        cluster.knative_crds = True
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def require_knative(cluster: Cluster) -> None:
    """The Knative CRDs must be installed: in CI (``CI`` set) their absence fails the test; on a
    developer's clone without ../shared it skips, saying where they were looked for."""
    if not cluster.knative_crds:
        message = (
            f"the Knative CRDs are missing: expected them in {shared_knative_dir()} (the shared/ folder beside "
            "the checkout, present in CI; set SLUICE_SHARED to another shared/ folder); this Knative test did not run"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def json_of(obj: Any) -> dict[str, Any]:
    """A kubernetes client model (or a dict) as the API's JSON."""
    from kubernetes import client

    if isinstance(obj, dict):
        return obj
    return dict(json.loads(json.dumps(client.ApiClient().sanitize_for_serialization(obj))))


def _binaries_missing() -> bool:
    done = subprocess.run(["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False)
    folder = Path(done.stdout.strip() or "/nonexistent")
    return not all((folder / b).is_file() for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests in tests/integration/kube get the ``kube`` marker; when the binaries are still to be built (pytest
    run without ``make``), the first such test may take the build's time, not pytest's 300 s."""
    kube = []
    for item in items:
        if "/tests/integration/kube/" in str(item.path):
            item.add_marker(pytest.mark.kube)
        if item.get_closest_marker("kube"):
            kube.append(item)
    if kube and _binaries_missing():
        kube[0].add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + START_TIMEOUT_S))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Cluster]:
    """The session's control plane (see the module docstring); torn down at the end."""
    root = Path(tempfile.mkdtemp(prefix="sluice-kube-"))
    cluster = start_cluster(root)
    try:
        yield cluster
    finally:
        cluster.stop()
        if os.environ.get("SLUICE_KEEP_KUBE_LOGS"):
            print(f"cluster logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
