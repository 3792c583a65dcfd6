"""Test-only functions and manifests for the broker tests (written into each test's tmp dir).

The functions-framework source below has one target per behaviour a subscriber can show; each
appends what it received to a JSON-lines record file, so tests see every delivery attempt.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

FUNCTIONS = '''
import json, os, threading, time

RECORD = {record!r}
_lock = threading.Lock()
_seen = {{}}


def _record(target, request):
    attrs = {{k.lower()[3:]: v for k, v in request.headers.items() if k.lower().startswith("ce-")}}
    entry = {{"target": target, "attrs": attrs, "content_type": request.headers.get("Content-Type", ""),
             "prefer": request.headers.get("Prefer", ""), "body": request.get_data(as_text=True)}}
    with _lock:
        with open(RECORD, "a") as out:
            out.write(json.dumps(entry) + "\\n")
        key = (target, attrs.get("id"))
        _seen[key] = _seen.get(key, 0) + 1
        return entry, _seen[key]


def _message(entry):
    try:
        return json.loads(entry["body"] or "{{}}").get("message", "")
    except ValueError:
        return ""


def recorder(request):
    if request.method == "GET":
        return "ready", 200
    _record("recorder", request)
    return "", 202


def flaky(request):
    """message "fail:N": 503 for the first N attempts of an event id, then 202."""
    if request.method == "GET":
        return "ready", 200
    entry, attempt = _record("flaky", request)
    failures = int(_message(entry).split(":")[1])
    if attempt <= failures:
        return "try again later", 503
    return "", 204


def status(request):
    """message "status:CODE": answer CODE (a 3xx carries a Location)."""
    if request.method == "GET":
        return "ready", 200
    entry, _ = _record("status", request)
    code = int(_message(entry).split(":")[1])
    return "status " + str(code), code, {{"Location": "http://127.0.0.1:9/elsewhere"}}


def hang(request):
    if request.method == "GET":
        return "ready", 200
    _record("hang", request)
    time.sleep(5)
    return "", 202


def notce(request):
    if request.method == "GET":
        return "ready", 200
    _record("notce", request)
    return "OK", 200


def gate(request):
    """Records the event, then holds its answer while the file <record>.hold exists (at most 30 s)."""
    if request.method == "GET":
        return "ready", 200
    _record("gate", request)
    deadline = time.time() + 30
    while os.path.exists(RECORD + ".hold") and time.time() < deadline:
        time.sleep(0.05)
    return "", 202


def bridge(request):
    """Shows what the broker's /bridge proxy passed on."""
    return json.dumps({{"method": request.method, "path": request.path, "query": dict(request.args),
                       "prefix": request.headers.get("X-Forwarded-Prefix", "")}}), 200, {{"Content-Type": "application/json"}}


def replier(request):
    """Replies a valid CloudEvent (binary mode), or one of specversion 9.9 for message "invalid"."""
    if request.method == "GET":
        return "ready", 200
    entry, _ = _record("replier", request)
    cause = entry["attrs"]["id"]
    version = "9.9" if _message(entry) == "invalid" else "1.0"
    headers = {{"ce-specversion": version, "ce-type": "dev.knative.sources.ping", "ce-source": "test/replier",
               "ce-id": "reply-" + cause, "ce-triggeredid": cause, "Content-Type": "application/json"}}
    return json.dumps({{"message": "reply to " + cause}}), 200, headers
'''

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: {name}
  namespace: {namespace}
spec:
  delivery:
    retry: 1
    backoffPolicy: linear
    backoffDelay: PT0.01S
"""

SERVICE = """
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/sluice-dev/sluice:test
          env:
            - name: FUNCTION_TARGET
              value: {target}
"""

PINGSOURCE = """
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: tick
  namespace: {namespace}
spec:
  schedule: "* * * * *"
  contentType: application/json
  data: '{{"message": "tick"}}'
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: {broker}
"""


def trigger(name: str, spec: str, broker: str = "default", namespace: str = "sluice") -> str:
    return (
        f"apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  broker: {broker}\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    )


def ksvc_ref(name: str) -> str:
    return f"subscriber:\n  ref:\n    apiVersion: serving.knative.dev/v1\n    kind: Service\n    name: {name}\n"


def write_functions(directory: Path, record: Path) -> Path:
    source = directory / "testfunctions.py"
    source.write_text(FUNCTIONS.format(record=str(record)), encoding="utf-8")
    return source


def write_knative(directory: Path, targets: list[str], namespace: str = "sluice", name: str = "default",
                  pingsource: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = BROKER.format(name=name, namespace=namespace)
    text += "".join(SERVICE.format(name=f"fn-{t}", namespace=namespace, target=t) for t in targets)
    if pingsource:
        text += PINGSOURCE.format(namespace=namespace, broker=name)
    (directory / "broker.yaml").write_text(text, encoding="utf-8")
    return directory
