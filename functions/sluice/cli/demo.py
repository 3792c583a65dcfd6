"""``make demo`` / ``sluice demo``: the quality-gates tutorial, end to end, on this machine.

Starts the local system (broker, functions, local backend), creates ``sockshop``, onboards
``carts``, delivers 0.10.1, adds the staging SLO, then sends 0.10.2 (1 s slower: fails the
staging gate and is rolled back) and 0.10.3 (passes, reaches production). Prints each
delivery's timeline as it happens and the final state; stops what it started. The state stays
in ``.sluice/`` so ``sluice status --project sockshop`` and ``sluice get event`` work afterwards.

``--canary`` runs the canary variant (``examples/sockshop-canary``, docs/canary.md): production
gives each build 10 %, 25 %, 50 % of the traffic in steps; 0.10.2 is stopped at the first step
and 0.10.3 walks 10 → 25 → 50 → 100.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluice.cli import common

EXAMPLE = Path("examples/sockshop")
CANARY_EXAMPLE = Path("examples/sockshop-canary")
IMAGE = "docker.io/keptnexamples/carts"
#: How long one delivery may take before the demo gives up on it.
DELIVERY_TIMEOUT_S = 150.0


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="run the quality-gates tutorial locally (no cluster)")
    demo.add_argument("--state-dir", default=None, help="state directory (default .sluice)")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--perf-duration", type=float, default=6.0, help="seconds of load test per stage")
    demo.add_argument("--sli-provider", default="builtin", choices=["builtin", "prometheus"])
    demo.add_argument("--keep-running", action="store_true", help="leave the system up at the end")
    demo.add_argument("--canary", action="store_true",
                      help="the canary variant: production takes each build in steps of 10, 25, 50 %% of the traffic")
    demo.set_defaults(func=run_demo)


def sluice(*argv: str) -> int:
    """Run one ``sluice`` command in-process, showing it as a user would type it."""
    from sluice.cli.main import main

    print(f"\n$ sluice {' '.join(argv)}", flush=True)
    code = main(list(argv))
    if code != 0:
        raise SystemExit(f"demo: 'sluice {' '.join(argv)}' failed with exit code {code}")
    return code


def follow(records: Any, context: str, last_stage: str, timeout_s: float = DELIVERY_TIMEOUT_S) -> list[dict[str, Any]]:
    """Print a delivery's events as they arrive until it ends (or the timeout passes)."""
    from sluice.services.readmodel import describe

    shown = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = records.events(context)
        for event in events[shown:]:
            print(f"   {event.get('time', '')[11:23]}  {event.get('source', ''):18} {describe(event)}", flush=True)
        shown = len(events)
        for event in events:
            data = event.get("data") or {}
            if event.get("type") == "sh.keptn.events.done" and (
                data.get("outcome") != "promoted" or data.get("stage") == last_stage
            ):
                time.sleep(0.5)  # let the last events land in the log
                for late in records.events(context)[shown:]:
                    print(f"   {late.get('time', '')[11:23]}  {late.get('source', ''):18} {describe(late)}")
                return records.events(context)
        time.sleep(0.25)
    raise SystemExit(f"demo: delivery {context} did not end within {timeout_s:g} s; see 'sluice get event --context {context}'")


def deliver(args: argparse.Namespace, records: Any, tag: str, last_stage: str) -> list[dict[str, Any]]:
    timeout = DELIVERY_TIMEOUT_S * (2 if getattr(args, "canary", False) else 1)  # three judged steps in production
    from sluice.cli.send import new_artifact_event
    from sluice.compose import build_publisher

    print(f"\n$ sluice send event new-artifact --project=sockshop --service=carts --image={IMAGE} --tag={tag}")
    event = new_artifact_event("sockshop", "carts", IMAGE, tag)
    build_publisher(common.settings(args).broker_url)(event)
    print(f"   delivery {event.shkeptncontext}")
    return follow(records, event.shkeptncontext, last_stage, timeout)


def run_demo(args: argparse.Namespace) -> int:
    if not (EXAMPLE / "shipyard.yaml").exists() or not (CANARY_EXAMPLE / "shipyard.yaml").exists():
        print("demo: run it from the root of a Sluice checkout (examples/sockshop is missing)", file=sys.stderr)
        return 2
    state_dir = args.state_dir or os.environ.get("SLUICE_STATE_DIR") or ".sluice"
    args.state_dir = state_dir
    args.broker = f"http://127.0.0.1:{args.port}/sluice/default"
    started = time.monotonic()
    canary = bool(getattr(args, "canary", False))
    shipyard = (CANARY_EXAMPLE if canary else EXAMPLE) / "shipyard.yaml"
    gated = "production" if canary else "staging"  # the stage with the SLO
    if canary:
        print("Sluice demo: the canary tutorial with carts 0.10.1 → 0.10.2 (slow) → 0.10.3; production in steps of 10, 25, 50 %")
    else:
        print("Sluice demo: the quality-gates tutorial with carts 0.10.1 → 0.10.2 (slow) → 0.10.3")
    from sluice.cli.main import main

    main(["down", "--state-dir", state_dir])  # a previous run's leftovers, if any
    if Path(state_dir).exists():
        print(f"(starting from a clean state: removing {state_dir}/ from an earlier run)")
        shutil.rmtree(state_dir)
    up = ["up", "--state-dir", state_dir, "--port", str(args.port), "--tick", "2",
          "--perf-duration", f"{args.perf_duration:g}", "--sli-provider", args.sli_provider]
    sluice(*up)
    try:
        sluice("create", "project", "sockshop", "--shipyard", str(shipyard), "--state-dir", state_dir)
        sluice("onboard", "service", "carts", "--project", "sockshop", "--state-dir", state_dir)
        for stage in ("dev", gated):
            # a canary step loads production's public address: its own tests.yaml gives the candidate's share enough samples
            tests = CANARY_EXAMPLE / "tests.yaml" if canary and stage == gated else EXAMPLE / "carts" / "tests.yaml"
            sluice("add-resource", "--project", "sockshop", "--stage", stage, "--service", "carts",
                   "--resource", str(tests), "--resourceUri", "tests.yaml", "--state-dir", state_dir)
        if args.sli_provider == "prometheus":
            sluice("add-resource", "--project", "sockshop", "--resource", str(EXAMPLE / "sli.yaml"),
                   "--resourceUri", "sli.yaml", "--state-dir", state_dir)
            sluice("set", "sli-provider", "prometheus", "--project", "sockshop", "--state-dir", state_dir)
        records = common.records(args)
        last = records.project("sockshop").shipyard.stages[-1].name

        print("\n== 1. carts 0.10.1 goes through every stage (no SLO yet: the tests decide)")
        deliver(args, records, "0.10.1", last)
        sluice("add-resource", "--project", "sockshop", "--stage", gated, "--service", "carts",
               "--resource", str((CANARY_EXAMPLE if canary else EXAMPLE) / "slo.yaml"), "--resourceUri", "slo.yaml",
               "--state-dir", state_dir)

        if canary:
            print("\n== 2. carts 0.10.2 answers every request 1 s late: its first canary step (10 %) must stop it")
        else:
            print("\n== 2. carts 0.10.2 answers every request 1 s late: the staging gate must reject it")
        deliver(args, records, "0.10.2", last)
        sluice("get", "evaluations", "--project", "sockshop", "--stage", gated, "--service", "carts",
               "--state-dir", state_dir)

        if canary:
            print("\n== 3. carts 0.10.3 is fast again: it must walk 10 → 25 → 50 → 100 % in production")
        else:
            print("\n== 3. carts 0.10.3 is fast again: it must reach production")
        deliver(args, records, "0.10.3", last)

        print("\n== Where everything stands")
        sluice("status", "--project", "sockshop", "--state-dir", state_dir)
        bridge = f"http://127.0.0.1:{args.port}/bridge/project/sockshop"
        print(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
        if args.keep_running:
            print(f"The system is still up: web view at {bridge}, broker at {args.broker}. Stop it with 'sluice down'.")
        else:
            print(f"State kept in {state_dir}/: try 'sluice status --project sockshop' or 'sluice get event --context <id>';")
            print("run 'sluice demo --keep-running' (or 'sluice up') to browse the web view.")
        return 0
    finally:
        if not args.keep_running:
            main(["down", "--state-dir", state_dir])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice demo")
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(["demo", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
