"""Cold start: each function, answering its first real event in a fresh process, loads only what
that event needs (what ``bench/coldstart.py`` times). Behaviour, not timing: the modules a
function must not have imported by its first answer are looked up in ``sys.modules``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main as sluice
from sluice.core import slo, validation
from sluice.core.intake import Trigger
from sluice.services.intake import add_trigger, set_secret

ROOT = Path(__file__).resolve().parents[3]
SOCKSHOP = ROOT / "examples" / "sockshop"
IMAGE = "docker.io/keptnexamples/carts"
SECRET = "cold-start-intake-secret"
START, END = "2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z"
SCOPE = {"project": "sockshop", "service": "carts"}

#: The parser of YAML and the SLO/scoring rules: a function whose first event reads no YAML
#: file (a project's shipyard is stored parsed too) and scores nothing loads neither.
YAML_AND_SCORING = ("yaml", "sluice.services.documents", "sluice.core.slo", "sluice.core.scoring")
#: The scoring rules: the evaluate function reads the SLO on a start-evaluation, and scores only
#: when the SLIs are back.
SCORING = ("sluice.core.scoring",)
#: The YAML parser alone: the evaluate function reads the SLO stored parsed beside its text.
YAML = ("yaml", "sluice.services.yamldoc")
#: The generic sli.yaml rules: only a provider that reads sli.yaml loads them (builtin reads none).
SLI_FILES = ("sluice.core.sli_config",)
#: The shipyard parser: only a function that reads a project's shipyard loads it (the strategies
#: an event names are enums of their own, ``sluice.core.strategies``).
SHIPYARD = ("sluice.core.shipyard",)
#: The test-spec rules: only the test function (and the test worker) reads test specs.
TEST_SPECS = ("sluice.core.testspec",)
#: The canary rules: only a canary stage's run loads them.
CANARY = ("sluice.core.canary",)
#: The workload rules: only an event that reads or renders a service's workload loads them.
WORKLOAD = ("sluice.core.workload",)
#: The broker publisher (urllib.request): only a function that posts an event loads it.
PUBLISHER = ("sluice.adapters.publish", "urllib.request")
#: Signing approvals and naming approvers: the web view does either only when someone approves
#: (a page only reads).
APPROVAL_SIGNING = ("sluice.services.approvals", "sluice.core.approval_auth")
#: The validating front door (``/events``) and the registry digest resolver (ECR pushes only):
#: a Docker Hub push needs neither.
FRONT_DOOR_AND_RESOLVER = ("sluice.functions.frontdoor", "sluice.functions.http", "sluice.adapters.registry")
#: Notification secrets (files) and the notification ports: the event log reads a secret only
#: when it sends a message that names one.
NOTIFICATION_SECRETS = ("sluice.adapters.notify", "sluice.ports.notify")
#: Ports that are only Protocols (type hints): nothing needs them at run time.
TYPE_ONLY_PORTS = ("sluice.ports.registry", "sluice.ports.secrets")
#: Never on the local store and backend.
CLUSTER = ("kubernetes", "botocore", "boto3")
#: The process launcher: only a test run that starts a unit spawns a worker (a failed deployment
#: is answered "not tested" without one).
SPAWN = ("subprocess",)
#: The archive port: a type only, without an archive configured (the local store has none).
ARCHIVE = ("sluice.ports.archive",)
#: The approval rules, the approver keys and the secret store: only an approval reads them.
APPROVALS = ("sluice.services.approvals", "sluice.core.approval_auth", "sluice.ports.secrets")
#: The ledger's lanes and runs (and what they serve): the event log's delivery index compares
#: times only (``sluice.core.times``).
LEDGER = ("sluice.core.ledger", "sluice.core.deployment")
#: The shipyard's rules (and the inconclusive policies they read): the event log's done asks the
#: project's stage names only, read from the stored parsed shipyard (``Records.stage_names``).
SHIPYARD_RULES = (*SHIPYARD, "sluice.core.inconclusive")

#: function → (its first event: CloudEvent type and data, or an HTTP request of its own; the
#: modules it must not have imported by its answer).
CASES: dict[str, tuple[str, dict[str, object], tuple[str, ...]]] = {
    "deploy": ("sh.keptn.event.configuration.change",
               {**SCOPE, "stage": "dev", "valuesCanary": {"image": f"{IMAGE}:0.10.1"}},
               YAML_AND_SCORING + TEST_SPECS + ARCHIVE),
    "test": ("sh.keptn.events.deployment-finished",
             {**SCOPE, "stage": "dev", "image": IMAGE, "tag": "0.10.1", "result": "fail", "message": "cold"},
             YAML_AND_SCORING + SHIPYARD + TEST_SPECS + SPAWN + ARCHIVE),
    "evaluate": ("sh.keptn.event.start-evaluation", {**SCOPE, "stage": "staging", "start": START, "end": END},
                 YAML + SCORING + TEST_SPECS),
    "sli": ("sh.keptn.internal.event.get-sli",
            {**SCOPE, "stage": "staging", "sliProvider": "builtin", "start": START, "end": END,
             "indicators": ["response_time_p95"]}, YAML_AND_SCORING + SHIPYARD + TEST_SPECS + SLI_FILES),
    "gatekeeper": ("sh.keptn.events.evaluation-done",
                   {**SCOPE, "stage": "dev", "image": IMAGE, "tag": "0.10.1", "result": "pass"},
                   YAML_AND_SCORING + TEST_SPECS + APPROVALS + ARCHIVE),
    "eventlog": ("sh.keptn.events.done", {**SCOPE, "stage": "dev", "result": "pass", "outcome": "promoted"},
                 YAML_AND_SCORING + TEST_SPECS + NOTIFICATION_SECRETS + PUBLISHER + LEDGER + SHIPYARD_RULES),
    "intake": ("", {"push_data": {"tag": "0.10.1"}, "repository": {"repo_name": "keptnexamples/carts"}},
               YAML_AND_SCORING + SHIPYARD + TEST_SPECS + FRONT_DOOR_AND_RESOLVER + TYPE_ONLY_PORTS),
    # a page reads stored records: no event is decoded or made (an approval would)
    "bridge": ("", {}, YAML_AND_SCORING + TEST_SPECS + PUBLISHER + APPROVAL_SIGNING + TYPE_ONLY_PORTS
               + ("sluice.core.events",)),
}

#: function → the event payload classes (``sluice.core.payloads.*``, created on first use) it may
#: have loaded by its first answer: those its event and its replies need (a tick's ping, an
#: approval's payloads, a done the first set does not send load where they are used).
PAYLOADS_USED: dict[str, set[str]] = {
    "deploy": {"configuration_change", "deployment_finished"},
    "test": {"deployment_finished", "tests_finished"},
    "evaluate": {"start_evaluation", "get_sli"},
    "sli": {"get_sli", "get_sli_done"},
    "gatekeeper": {"evaluation_done", "configuration_change"},
    "eventlog": {"done"},  # its metrics read an event's payload TYPE: no other payload class
    "intake": {"configuration_change"},
    "bridge": set(),  # a page makes no event (an approval would)
}
PAYLOAD_PREFIX = "sluice.core.payloads."

#: Classes a first event never builds, so a cold start does not create them: a run's test unit,
#: pending evaluation and hold, a queued delivery (``sluice.core.ledger_parts``, loaded where a run
#: has one), and the backend steps only the deploy function plans (``sluice.core.plans``).
LEDGER_PARTS = ("TestRun", "PendingEvaluation", "Hold", "Queued")
PLANS = ("Step", "Action")
#: What ``comparison_history`` takes (``sluice.core.inconclusive``): a Protocol, a type only.
TYPE_ONLY_CLASSES = ("_Judged",)
CLASSES_UNUSED: dict[str, tuple[str, ...]] = {
    "deploy": LEDGER_PARTS + TYPE_ONLY_CLASSES,
    "test": LEDGER_PARTS + PLANS,
    "gatekeeper": LEDGER_PARTS + PLANS + TYPE_ONLY_CLASSES,
    "evaluate": PLANS + TYPE_ONLY_CLASSES,
}

#: Patterns compiled on first use, and the functions whose first event matches none of them:
#: a cluster name (only onboarding checks one), a duration, a percentile aggregate (``pNN``), an image reference (the deploy
#: function's set names one). (Names, labels, data keys and event times every function reads are
#: checked without ``re``: ``sluice.core.lexical``.)
RARE_PATTERNS = (validation._DNS_1035, validation._DURATION)
PATTERNS_UNUSED: dict[str, tuple[str | re.Pattern[str], ...]] = {
    "deploy": RARE_PATTERNS,
    "test": (*RARE_PATTERNS, validation._REFERENCE),
    "gatekeeper": (*RARE_PATTERNS, validation._REFERENCE),
    "evaluate": (*RARE_PATTERNS, slo._PERCENTILE),  # the SLO aggregates with avg, not pNN
}

CHILD = r"""
import gc, json, os, re, sys
from functions_framework import create_app

app = create_app(os.environ["TARGET"], os.environ["SOURCE"])
loaded_frozen = gc.get_freeze_count()
method, path, headers, body = json.loads(os.environ["REQUEST"])
answer = app.test_client().open(path, method=method, headers=headers, data=body.encode())
compiled = sorted({key[1] for key in re._cache if isinstance(key, tuple) and isinstance(key[1], str)})
classes = sorted({value.__qualname__ for name, module in list(sys.modules.items()) if name.startswith("sluice.")
                  for value in vars(module).values() if isinstance(value, type) and value.__module__ == name})
print(json.dumps({"status": answer.status_code, "modules": sorted(sys.modules), "patterns": compiled,
                  "classes": classes, "frozen": [loaded_frozen, gc.get_freeze_count()],
                  "inits_compiled": sys.modules["sluice.core.frozen"].compiled}))
"""


class _Sink(BaseHTTPRequestHandler):
    """The broker's ingress, as far as a function that posts more than its reply needs it: 202."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An onboarded sockshop (shipyard, carts, SLO, a Docker Hub trigger) in a local state dir, and a sink."""
    state = tmp_path_factory.mktemp("state")
    for step in (["create", "project", "sockshop", "--shipyard", str(SOCKSHOP / "shipyard.yaml")],
                 ["onboard", "service", "carts", "--project", "sockshop"],
                 ["add-resource", "--project", "sockshop", "--stage", "staging", "--service", "carts",
                  "--resource", str(SOCKSHOP / "slo.yaml"), "--resourceUri", "slo.yaml"]):
        assert sluice([*step, "--state-dir", str(state)]) == 0, step
    set_secret(LocalSecrets(str(state)), "dockerhub", SECRET)
    add_trigger(LocalStore(directory=str(state)), Trigger.create("sockshop", "carts", IMAGE))
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and k != "K_SINK"}
    env.update(SLUICE_STATE_DIR=str(state), SLUICE_BACKEND="noop", PYTHONPATH=str(ROOT),
               SLUICE_BROKER_URL=f"http://127.0.0.1:{sink.server_address[1]}/sluice/default")
    yield env
    sink.shutdown()
    sink.server_close()


def request_for(function: str, kind: str, data: dict[str, object]) -> tuple[str, str, dict[str, str], str]:
    if function == "intake":
        return "POST", "/dockerhub", {"content-type": "application/json", "x-sluice-token": SECRET}, json.dumps(data)
    if function == "bridge":
        return "GET", "/project/sockshop", {}, ""
    headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-source": "tests/cold", "ce-type": kind,
               "ce-time": START, "ce-shkeptncontext": str(uuid.uuid4()), "content-type": "application/json"}
    return "POST", "/", headers, json.dumps(data)


@pytest.mark.parametrize("function", sorted(CASES))
def test_first_event_loads_only_what_it_needs(world: dict[str, str], function: str) -> None:
    """A fresh process of the function answers its first real event without loading the heavy
    modules that event does not need (nor a cluster client on the local store)."""
    kind, data, unneeded = CASES[function]
    env = {**world, "TARGET": function, "SOURCE": str(ROOT / "functions" / "main.py"),
           "REQUEST": json.dumps(request_for(function, kind, data))}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["status"] < 300, out.stderr[-3000:]
    loaded = set(answer["modules"])
    assert "sluice.core.events" in loaded or function == "bridge"  # it did handle the event
    assert [m for m in (*unneeded, *WORKLOAD, *CANARY, *CLUSTER) if m in loaded] == []
    assert [c for c in CLASSES_UNUSED.get(function, ()) if c in answer["classes"]] == [], "classes created unused"
    payloads = {m.removeprefix(PAYLOAD_PREFIX) for m in loaded if m.startswith(PAYLOAD_PREFIX)}
    assert payloads - PAYLOADS_USED[function] == set(), "payload classes its first event does not need"
    # ``re`` keeps every pattern it compiled (``re.compile`` at import included) in ``re._cache``
    unused = [getattr(p, "pattern", p) for p in PATTERNS_UNUSED.get(function, ())]  # a text or a compiled pattern
    assert [p for p in unused if p in answer["patterns"]] == [], "patterns compiled unused"
    # the framework's objects are frozen once ``main.py`` is loaded, the function's modules once
    # imported: what its first event allocates is collected without walking either
    at_load, at_answer = answer["frozen"]
    assert 10_000 < at_load < at_answer, answer["frozen"]


@pytest.mark.parametrize("function", ["deploy", "evaluate", "bridge"])
def test_after_the_image_build_warm_step_a_first_event_compiles_no_init(
    world: dict[str, str], tmp_path: Path, function: str
) -> None:
    """``python -m sluice.functions.warm`` (the image build's last step, from the functions'
    folder) caches every ``@frozen`` class's ``__init__``: a cold start then compiles none, even
    with bytecode writing off as in the image."""
    copy = tmp_path / "functions"
    shutil.copytree(ROOT / "functions", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in world.items() if k != "PYTHONDONTWRITEBYTECODE"}
    warm = subprocess.run([sys.executable, "-m", "sluice.functions.warm"], cwd=copy, env={**env, "PYTHONPATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert "compiled and cached" in warm.stdout and list(copy.glob("sluice/core/__pycache__/*.inits"))
    kind, data, _ = CASES[function]
    child = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(copy), "TARGET": function,
             "SOURCE": str(copy / "main.py"), "REQUEST": json.dumps(request_for(function, kind, data))}
    out = subprocess.run([sys.executable, "-c", CHILD], env=child, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["status"] < 300 and answer["inits_compiled"] == 0


def test_the_ledger_and_the_runtime_load_no_events() -> None:
    """The ledger's records (its outcome is loaded where a stored run has ended) and the functions'
    runtime (events are its types only) do not load ``sluice.core.events``: a page makes no event."""
    code = ("import json, sys, sluice.core.ledger, sluice.functions.runtime\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('sluice.'))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout)
    assert "sluice.core.ledger" in loaded and "sluice.core.events" not in loaded


def test_intake_routes_the_front_door_path_it_does_not_import() -> None:
    """intake names the front door's path without importing ``sluice.functions.frontdoor``."""
    from sluice.functions import frontdoor, intake

    assert intake.FRONT_DOOR == frontdoor.PATH
