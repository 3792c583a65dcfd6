"""A live chaos run on the embedded default: many deliveries, duplicates, kills — does every delivery end?

What it does (one real ``sluice up`` in a temporary state directory, the sockshop shipyard):

- onboards ``--services`` services (default 4: carts, orders, payment, shipping — all run the
  carts sample images of ``examples/sockshop/images.yaml``: 0.10.1 and 0.10.3 are fast, 0.10.2
  answers every request 1 s late), with the tutorial's tests (dev, staging) and staging SLO;
- starts ``--deliveries`` new-artifact deliveries at once (default 24: per service a 0.10.1
  first, then a random mix of the three builds);
- while they run, every ``--chaos-every`` seconds one random act of chaos:
  re-posting a random event already seen (any delivery, ended or not) to the broker; re-posting
  every event of a delivery that ended at least ``--old-after`` seconds ago (once per delivery);
  SIGKILL of a random function process; SIGKILL of a random local deployment process; and, every
  ``--broker-every`` seconds (up to ``--broker-kills`` times), SIGKILL of the broker right after
  it answered 202 to a re-post, followed by ``sluice up``;
- stops the chaos once every delivery has ended (or at ``--timeout``), and prints: deliveries
  started / ended / stuck (each stuck one with its last event), wrong promotions (a 0.10.2
  promoted in staging or production, or a promotion in a stage whose evaluation failed in the
  same delivery), the outcomes, what the chaos did, and the time until all had ended.

It reads only what a user can read — ``sluice get event --context … --output json``, ``sluice
status --output json``, the broker's ``/health``, ``<state-dir>/broker/state.json`` and the
local backend's slot records — so it keeps working when the state layer changes.

A delivery has ended when its event log holds a ``sh.keptn.events.done`` that is not a
promotion, or a promotion in the last stage. Aim: 0 stuck, 0 wrong promotions.

Run from the checkout: .venv/bin/python bench/chaos.py [--deliveries 24] [--services 4]
    [--timeout 900] [--chaos-every 3] [--broker-kills 3] [--broker-every 20] [--seed 1]
    [--perf-duration 3] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sockshop"
IMAGE = "docker.io/keptnexamples/carts"
SERVICES = ("carts", "orders", "payment", "shipping", "catalogue", "users")
SLOW = "0.10.2"
DONE = "sh.keptn.events.done"
EVALUATION_DONE = "sh.keptn.events.evaluation-done"


def cli(*argv: str) -> tuple[int, str]:
    """One ``sluice`` command in this process; its exit code and standard output."""
    from sluice.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue()


def cli_ok(*argv: str) -> str:
    code, out = cli(*argv)
    if code != 0:
        raise SystemExit(f"chaos: 'sluice {' '.join(argv)}' failed with exit code {code}")
    return out


@dataclass
class Delivery:
    context: str
    service: str
    tag: str
    started: float
    ended: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False


@dataclass
class Chaos:
    reposts: int = 0
    old_replays: int = 0
    old_events: int = 0
    function_kills: int = 0
    deployment_kills: int = 0
    broker_kills: int = 0
    up_seconds: list[float] = field(default_factory=list)
    failed_acts: Counter[str] = field(default_factory=Counter)


class Run:
    def __init__(self, args: argparse.Namespace, state_dir: Path, port: int) -> None:
        self.args = args
        self.state_dir = state_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}/sluice/default"
        self.rng = random.Random(args.seed)
        self.deliveries: dict[str, Delivery] = {}
        self.chaos = Chaos()
        self.last_stage = "production"
        self.last_broker_kill = time.monotonic()

    # --- the system ----------------------------------------------------------------------

    def sluice_up(self) -> float:
        started = time.monotonic()
        argv = [sys.executable, "-m", "sluice.cli.main", "up", "--state-dir", str(self.state_dir), "--port",
                str(self.port), "--tick", "1", "--perf-duration", f"{self.args.perf_duration:g}"]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"chaos: sluice up failed:\n{done.stdout}\n{done.stderr}")
        return time.monotonic() - started

    def sluice_down(self) -> None:
        subprocess.run([sys.executable, "-m", "sluice.cli.main", "down", "--state-dir", str(self.state_dir)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)

    def setup(self, services: list[str]) -> None:
        state = ["--state-dir", str(self.state_dir)]
        cli_ok("create", "project", "sockshop", "--shipyard", str(EXAMPLE / "shipyard.yaml"), *state)
        for service in services:
            cli_ok("onboard", "service", service, "--project", "sockshop", *state)
            for stage in ("dev", "staging"):
                cli_ok("add-resource", "--project", "sockshop", "--stage", stage, "--service", service,
                       "--resource", str(EXAMPLE / "carts" / "tests.yaml"), "--resourceUri", "tests.yaml", *state)
            cli_ok("add-resource", "--project", "sockshop", "--stage", "staging", "--service", service,
                   "--resource", str(EXAMPLE / "slo.yaml"), "--resourceUri", "slo.yaml", *state)

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.state_dir / "broker" / "state.json").read_text()))
        except (OSError, ValueError):
            return {}

    def health(self) -> dict[str, Any]:
        try:
            return dict(httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).json())
        except (httpx.HTTPError, ValueError):
            return {}

    # --- deliveries ----------------------------------------------------------------------

    def start(self, service: str, tag: str) -> None:
        from sluice.adapters.publish import post_event
        from sluice.cli.send import new_artifact_event

        event = new_artifact_event("sockshop", service, IMAGE, tag)
        post_event(self.url, event)
        self.deliveries[event.shkeptncontext] = Delivery(event.shkeptncontext, service, tag, time.monotonic())

    def refresh(self) -> None:
        for d in self.deliveries.values():
            if d.ended is not None and d.replayed:
                continue
            code, out = cli("get", "event", "--context", d.context, "--state-dir", str(self.state_dir),
                            "--output", "json", "--limit", "100000")
            if code != 0:
                continue
            with contextlib.suppress(ValueError):
                d.events = list(json.loads(out))
            if d.ended is None and ended(d.events, self.last_stage):
                d.ended = time.monotonic()

    # --- chaos ---------------------------------------------------------------------------

    def post_raw(self, event: dict[str, Any]) -> int:
        response = httpx.post(self.url, content=json.dumps(event), timeout=10,
                              headers={"content-type": "application/cloudevents+json"})
        return response.status_code

    def act(self) -> None:
        acts = ["repost"] * 3 + ["old"] * 2 + ["function"] * 2 + ["deployment"] * 2
        what = self.rng.choice(acts)
        due = time.monotonic() - self.last_broker_kill >= self.args.broker_every
        if self.chaos.broker_kills < self.args.broker_kills and due:
            what, self.last_broker_kill = "broker", time.monotonic()
        try:
            getattr(self, f"_{what}")()
        except (httpx.HTTPError, OSError, ValueError, KeyError, IndexError) as err:
            self.chaos.failed_acts[f"{what}: {type(err).__name__}"] += 1

    def _seen(self) -> list[dict[str, Any]]:
        return [e for d in self.deliveries.values() for e in d.events]

    def _repost(self) -> None:
        seen = self._seen()
        if seen:
            self.post_raw(self.rng.choice(seen))
            self.chaos.reposts += 1

    def _old(self) -> None:
        now = time.monotonic()
        old = [d for d in self.deliveries.values()
               if d.ended is not None and not d.replayed and now - d.ended >= self.args.old_after]
        if not old:
            return self._repost()
        d = self.rng.choice(old)
        for event in d.events:  # every event of a delivery that ended long ago, in order
            self.post_raw(event)
            self.chaos.old_events += 1
        d.replayed = True
        self.chaos.old_replays += 1
        return None

    def _function(self) -> None:
        functions = self.state().get("functions") or {}
        name = self.rng.choice(sorted(n for n in functions if "bridge" not in n))
        os.killpg(int(functions[name]["pid"]), signal.SIGKILL)
        self.chaos.function_kills += 1

    def _deployment(self) -> None:
        slots = sorted((self.state_dir / "runtime" / "slots").glob("*.json"))
        record = json.loads(self.rng.choice(slots).read_text())
        os.killpg(int(record["pid"]), signal.SIGKILL)
        self.chaos.deployment_kills += 1

    def _broker(self) -> None:
        seen = self._seen()
        if not seen:
            return
        pid = int(self.state()["pid"])
        if self.post_raw(self.rng.choice(seen)) == 202:
            os.kill(pid, signal.SIGKILL)  # right after the 202
            self.chaos.broker_kills += 1
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.05)
            self.chaos.up_seconds.append(self.sluice_up())


def ended(events: list[dict[str, Any]], last_stage: str) -> bool:
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == DONE and (data.get("outcome") != "promoted" or data.get("stage") == last_stage):
            return True
    return False


def wrong_promotions(d: Delivery) -> list[str]:
    """Promotions this delivery should never have made."""
    failed_in = {(e.get("data") or {}).get("stage") for e in d.events
                 if e.get("type") == EVALUATION_DONE and (e.get("data") or {}).get("result") == "fail"}
    wrong = []
    for event in d.events:
        data = event.get("data") or {}
        if event.get("type") != DONE or data.get("outcome") != "promoted":
            continue
        stage = data.get("stage")
        if stage in failed_in:
            wrong.append(f"{d.service} {d.tag} promoted in {stage} after a failed evaluation there ({d.context})")
        elif d.tag == SLOW and stage in ("staging", "production"):
            wrong.append(f"{d.service} {d.tag} (the slow build) promoted in {stage} ({d.context})")
    return wrong


def outcome(d: Delivery) -> str:
    for event in reversed(d.events):
        data = event.get("data") or {}
        if event.get("type") == DONE:
            return f"{data.get('outcome', '?')} in {data.get('stage', '?')}"
    return "no done event"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=24)
    parser.add_argument("--services", type=int, default=4, choices=range(1, len(SERVICES) + 1))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds until deliveries count as stuck")
    parser.add_argument("--chaos-every", type=float, default=3.0)
    parser.add_argument("--old-after", type=float, default=30.0, help="a delivery ended this long ago is 'old'")
    parser.add_argument("--broker-kills", type=int, default=3, help="how many (at most)")
    parser.add_argument("--broker-every", type=float, default=20.0, help="seconds between broker kills")
    parser.add_argument("--perf-duration", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the state directory (printed)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "functions"))
    from sluice.embedded.broker.processes import free_port

    work = Path(tempfile.mkdtemp(prefix="sluice-chaos-"))
    run = Run(args, work / "state", free_port())
    services = list(SERVICES[: args.services])
    plan: list[tuple[str, str]] = [(s, "0.10.1") for s in services]
    while len(plan) < args.deliveries:
        plan.append((run.rng.choice(services), run.rng.choice(["0.10.1", SLOW, "0.10.3"])))
    print(f"chaos run: {len(plan)} deliveries over {len(services)} services ({Counter(t for _, t in plan)}), "
          f"seed {args.seed}, state in {work}", flush=True)
    started = time.monotonic()
    try:
        run.setup(services)
        run.sluice_up()
        for service, tag in plan:
            run.start(service, tag)
        print(f"  {len(plan)} deliveries started in {time.monotonic() - started:.1f} s; chaos every "
              f"{args.chaos_every:g} s until all end (at most {args.timeout:g} s)", flush=True)
        next_act = time.monotonic() + args.chaos_every
        last_report = time.monotonic()
        while time.monotonic() - started < args.timeout:
            run.refresh()
            if all(d.ended is not None for d in run.deliveries.values()):
                break
            if time.monotonic() >= next_act:
                run.act()
                next_act = time.monotonic() + args.chaos_every
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                done = sum(d.ended is not None for d in run.deliveries.values())
                print(f"  {time.monotonic() - started:5.0f} s: {done}/{len(plan)} ended", flush=True)
            time.sleep(1.0)
        all_ended = time.monotonic() - started
        run.refresh()
        health = run.health()
        code, status_out = cli("status", "--project", "sockshop", "--state-dir", str(run.state_dir), "--output", "json")
    finally:
        run.sluice_down()
    report(run, all_ended, health, status_out if code == 0 else "")
    if args.keep:
        print(f"state kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(run: Run, all_ended: float, health: dict[str, Any], status: str) -> None:
    deliveries = list(run.deliveries.values())
    stuck = [d for d in deliveries if d.ended is None]
    wrong = [w for d in deliveries for w in wrong_promotions(d)]
    with contextlib.suppress(ValueError):
        view = json.loads(status) if status else {}
        for stage in view.get("stages", []):
            for svc in stage.get("services", []):
                primary = str(svc.get("primary") or "")
                if stage.get("name") in ("staging", "production") and primary.endswith(":" + SLOW):
                    wrong.append(f"at the end, {svc.get('name')} in {stage.get('name')} runs the slow build as primary")
    c = run.chaos
    metrics = health.get("metrics") or {}
    print()
    print("                                   measured     aim")
    print(f"  deliveries started            {len(deliveries):10d}")
    print(f"  deliveries ended              {len(deliveries) - len(stuck):10d}  {len(deliveries):6d}")
    print(f"  deliveries stuck              {len(stuck):10d}  {0:6d}")
    print(f"  wrong promotions              {len(wrong):10d}  {0:6d}")
    if stuck:
        print(f"  time for all to end           not all within {all_ended:.0f} s")
    else:
        print(f"  time for all to end           {all_ended:8.0f} s")
    durations = sorted((d.ended or 0) - d.started for d in deliveries if d.ended is not None)
    if durations:
        print(f"  delivery duration p50 / max   {durations[len(durations) // 2]:6.0f} s / {durations[-1]:.0f} s")
    print(f"  outcomes: {dict(Counter(outcome(d) for d in deliveries))}")
    print(f"  chaos: {c.reposts} re-posts of random events, {c.old_replays} old deliveries re-posted whole "
          f"({c.old_events} events), {c.function_kills} function kills, {c.deployment_kills} deployment kills, "
          f"{c.broker_kills} broker kills after a 202 (sluice up took {', '.join(f'{s:.1f}' for s in c.up_seconds) or '-'} s)")
    if c.failed_acts:
        print(f"  chaos acts that could not be done: {dict(c.failed_acts)}")
    if health:
        restarts = {n: f.get("restarts") for n, f in (health.get("function_health") or {}).items() if f.get("restarts")}
        print(f"  broker (last run): status {health.get('status')}, journal {health.get('journal')}, "
              f"redelivered {metrics.get('redelivered')}, dead-lettered {metrics.get('dead_lettered')}, "
              f"function restarts {restarts}")
    for w in wrong:
        print(f"  WRONG: {w}")
    for d in stuck:
        last = d.events[-1] if d.events else {}
        print(f"  STUCK: {d.service} {d.tag} {d.context}: {len(d.events)} events, last "
              f"{last.get('type', '-')} {json.dumps((last.get('data') or {}).get('stage', ''))} from {last.get('source', '-')}")


if __name__ == "__main__":
    sys.exit(main())
