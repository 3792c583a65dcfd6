"""Benchmark: the tutorial's relative criterion under noise — Keptn's point comparison beside
Sluice's opt-in noise-aware comparison (Mann–Whitney U over the load test's latency histograms).

    .venv/bin/python bench/noise.py [--runs 9] [--seconds 6] [--rate 20] [--burners 0]

Real processes on 127.0.0.1: carts 0.10.1 (the baseline), then ``--runs`` load tests of 0.10.3
(no slowdown) under whatever else the machine runs (plus ``--burners`` busy-loop processes, if
asked), then two of 0.10.2 (every request 1 s late). Each run goes through the real load
generator and the builtin SLI provider's data path, and is scored twice against the baseline:
with ``examples/sockshop/slo.yaml`` as Keptn reads it (its noise option removed) and as written
(``comparison: {method: mann_whitney}``).

Reference (issue 18): under concurrent load the tutorial SLO's ``<=+10%`` rejected 3 of 9 fast
0.10.3 builds. The aim: noise-aware rejects none of the 0.10.3 runs and every 0.10.2 run.

What it cannot do: when burners saturate every core, *all* of 0.10.3's requests get slower (effect
A ≈ 0.8–0.9 on a shared 2-core machine) and the rank test, rightly, cannot tell that from a slower
build; a ``noise_floor`` in milliseconds is the tool for "differences this small do not count".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))  # tests.support

from tests.support.carts import run_carts  # noqa: E402

from sluice.adapters.sli.builtin import BuiltinSliProvider  # noqa: E402
from sluice.core.scoring import EvaluationResult, Measurement, Subject, Verdict, evaluate  # noqa: E402
from sluice.core.slo import Slo, parse_slo  # noqa: E402
from sluice.loadgen import LoadProfile, LoadRequest, run_load_sync  # noqa: E402
from sluice.ports.sli import SliQuery  # noqa: E402

SLO_FILE = ROOT / "examples" / "sockshop" / "slo.yaml"


def _burn(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x = (x * 7 + 1) % 1_000_003


def slos() -> tuple[Slo, Slo]:
    doc = yaml.safe_load(SLO_FILE.read_text())
    noisy = parse_slo(doc, str(SLO_FILE))
    for obj in doc["objectives"]:
        obj.pop("comparison", None)
        obj.pop("noise_floor", None)
    return parse_slo(doc, "keptn"), noisy


def measure(url: str, seconds: float, rate: float) -> list[Measurement]:
    profile = LoadProfile(requests=(LoadRequest(path="/carts/1/items"),), duration_s=seconds, rate=rate)
    report = run_load_sync(url, profile)
    stored: dict[str, Any] = {**report.measurements(), **report.samples()}
    provider = BuiltinSliProvider(lambda *_: stored)
    query = SliQuery("sockshop", "staging", "carts", ("response_time_p95", "error_rate", "throughput"), "", "", context="c")
    wire = json.loads(json.dumps([v.to_dict() for v in provider.fetch(query)]))
    return [Measurement.from_indicator_value(v) for v in wire]


def score(slo: Slo, values: list[Measurement], baseline: EvaluationResult) -> EvaluationResult:
    return evaluate(slo, values, [baseline], subject=Subject(project="sockshop", stage="staging", service="carts"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--burners", type=int, default=0, help="busy-loop processes during the 0.10.3 runs")
    args = parser.parse_args()
    keptn, noisy = slos()

    with run_carts("--app-version", "0.10.1") as url:
        base_values = measure(url, args.seconds, args.rate)
    baselines = {
        name: evaluate(slo, base_values,
            subject=Subject(id="0.10.1", project="sockshop", stage="staging", service="carts"))
        for name, slo in (("keptn", keptn), ("noisy", noisy))
    }
    base_p95 = baselines["keptn"].indicator("response_time_p95").value  # type: ignore[union-attr]
    print(f"baseline 0.10.1: p95 {base_p95} ms over {base_values[0].samples} requests")

    rows: list[tuple[str, float | None, Verdict, Verdict, str]] = []

    def judge(tag: str, url: str) -> None:
        values = measure(url, args.seconds, args.rate)
        k = score(keptn, values, baselines["keptn"])
        n = score(noisy, values, baselines["noisy"])
        p95 = k.indicator("response_time_p95").value  # type: ignore[union-attr]
        noise = n.indicator("response_time_p95").noise  # type: ignore[union-attr]
        why = "" if not noise else (f"{noise[0].outcome}: p={noise[0].test.p_value:.3g}, A={noise[0].test.effect:.2f}"
                                    if noise[0].test else noise[0].outcome)
        rows.append((tag, p95, k.result, n.result, why))
        print(f"  {tag}: p95 {p95} ms  keptn {k.result.value:7}  noise-aware {n.result.value:7}  {why}", flush=True)

    print(f"0.10.3 with {args.burners} extra CPU burner(s), {args.runs} runs of {args.seconds:g} s at {args.rate:g} req/s:")
    with run_carts("--app-version", "0.10.3") as url:
        for _ in range(args.runs):
            stop_at = time.monotonic() + args.seconds + 1.0
            burners = [multiprocessing.Process(target=_burn, args=(stop_at,), daemon=True) for _ in range(args.burners)]
            for b in burners:
                b.start()
            try:
                judge("0.10.3", url)
            finally:
                for b in burners:
                    b.join(timeout=args.seconds + 5)
                    if b.is_alive() and b.pid is not None:
                        os.kill(b.pid, 9)
    print("0.10.2 (every request 1 s late), 2 runs:")
    with run_carts("--app-version", "0.10.2", "--delay-ms", "1000") as url:
        for _ in range(2):
            judge("0.10.2", url)

    fast = [r for r in rows if r[0] == "0.10.3"]
    slow = [r for r in rows if r[0] == "0.10.2"]
    p95s = [r[1] for r in fast if r[1] is not None]
    print()
    print(f"0.10.3 p95 {min(p95s):.1f}–{max(p95s):.1f} ms against a baseline of {base_p95} ms")
    print(f"0.10.3 rejected: Keptn point compare {sum(r[2] is not Verdict.PASS for r in fast)} of {len(fast)}, "
          f"noise-aware {sum(r[3] is not Verdict.PASS for r in fast)} of {len(fast)}  (reference: Keptn 3 of 9; aim: 0)")
    print(f"0.10.2 rejected: Keptn point compare {sum(r[2] is not Verdict.PASS for r in slow)} of {len(slow)}, "
          f"noise-aware {sum(r[3] is not Verdict.PASS for r in slow)} of {len(slow)}  (aim: all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
