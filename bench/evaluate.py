"""Benchmark the quality-gate evaluator (prints figures; asserts nothing).

- evaluations per second for the tutorial SLO (one objective, one previous evaluation);
  aim ≥ 20,000/s;
- milliseconds per evaluation for a large SLO: 100 objectives × 50 previous evaluations;
  aim ≤ 5 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sluice.core.scoring import EvaluationResult, Measurement, Subject, evaluate
from sluice.core.slo import parse_slo
from sluice.services.documents import load_slo

TUTORIAL_SLO = Path(__file__).resolve().parents[1] / "examples" / "quality-gate" / "slo.yaml"


def large_slo() -> dict[str, object]:
    objectives = [
        {
            "sli": f"sli_{i}",
            "weight": 1 + i % 3,
            "key_sli": i % 10 == 0,
            "pass": [{"criteria": ["<=+10%", f"<{600 + i}"]}, {"criteria": ["<100"]}],
            "warning": [{"criteria": [f"<={800 + i}"]}],
        }
        for i in range(100)
    ]
    return {
        "comparison": {
            "compare_with": "several_results",
            "number_of_comparison_results": 50,
            "include_result_with_score": "pass_or_warn",
            "aggregate_function": "p90",
        },
        "objectives": objectives,
        "total_score": {"pass": "90%", "warning": "75%"},
    }


def timed(fn: Callable[[], object], seconds: float) -> tuple[int, float]:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count, now - start


def main() -> None:
    slo = load_slo(TUTORIAL_SLO.read_text(), str(TUTORIAL_SLO))
    prev = [evaluate(slo, [Measurement("response_time_p95", 350.0)], subject=Subject(id="prev"))]
    values = [Measurement("response_time_p95", 380.0)]
    count, elapsed = timed(lambda: evaluate(slo, values, prev), 2.0)
    print(f"tutorial SLO (1 objective, 1 previous): {count / elapsed:,.0f} evaluations/s (aim >= 20,000/s)")

    big = parse_slo(large_slo(), "large")
    history: list[EvaluationResult] = []
    for n in range(50):
        vals = [Measurement(f"sli_{i}", 300.0 + (n * 7 + i) % 200) for i in range(100)]
        history.append(evaluate(big, vals, subject=Subject(id=f"e{n}")))
    current = [Measurement(f"sli_{i}", 320.0 + i % 50) for i in range(100)]
    result = evaluate(big, current, history)
    count, elapsed = timed(lambda: evaluate(big, current, history), 2.0)
    print(
        f"large SLO (100 objectives x 50 previous): {1000 * elapsed / count:.2f} ms/evaluation "
        f"({count / elapsed:,.0f}/s; aim <= 5 ms) -> {result.result.value}, score {result.score:.1f}, "
        f"compared with {len(result.comparison.compared_evaluations) if result.comparison else 0} evaluations"
    )

    doc = result.to_dict()
    count, elapsed = timed(lambda: EvaluationResult.from_dict(doc), 1.0)
    print(f"large result from_dict: {1000 * elapsed / count:.2f} ms")


if __name__ == "__main__":
    main()
