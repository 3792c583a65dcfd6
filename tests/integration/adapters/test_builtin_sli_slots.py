"""The builtin SLI provider on a canary step's measurements: the load went to the stage's public
address, so an indicator reads the share of the query's deployment (the canary), the
``_primary``/``_canary`` forms read one slot, a share of fewer than MIN_SLOT_SAMPLES answers is
"could not measure", and a load the router did not split by slot never passes as the canary's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sluice.adapters.sli.builtin import MIN_SLOT_SAMPLES, BuiltinSliProvider
from sluice.ports.sli import SliQuery


def share(requests: int, p95: float, errors: int = 0) -> dict[str, Any]:
    return {"requests": requests, "errors": errors, "error_rate": errors / requests if requests else 1.0,
            "throughput": requests / 10.0, "response_time_p95": p95, "response_time_p50": p95 / 2,
            "latency_histogram_us": [[int(p95 * 1000), requests]] if requests else []}


def step(canary: int, primary: int, canary_p95: float = 1004.0, unattributed: int = 0) -> dict[str, Any]:
    """What the test of a canary step stores: totals over both slots, and each slot apart."""
    total = canary + primary
    return {"requests": total, "response_time_p95": 900.0, "error_rate": 0.0, "throughput": total / 10.0,
            "measured_at": "public", "unattributed": unattributed,
            "slots": {"canary": share(canary, canary_p95), "primary": share(primary, 2.0)}}


def fetch(stored: Mapping[str, Any] | None, *indicators: str, deployment: str = "canary") -> list[Any]:
    provider = BuiltinSliProvider(lambda *_: stored)
    return list(provider.fetch(SliQuery("sockshop", "production", "carts", indicators, "2026-01-01T00:00:00Z",
                                         "2026-01-01T00:00:10Z", deployment=deployment, context="c")))


def test_the_canary_is_judged_by_its_own_share_not_the_mix() -> None:
    """At 10 %, 0.10.2's 120 answers at ~1 s: the canary's p95 is its own, not the mix's 900 ms."""
    (p95,) = fetch(step(120, 1080), "response_time_p95")
    assert p95.success and p95.value == 1004.0 and p95.samples == 120
    assert "canary's share" in p95.message


def test_the_primary_can_be_read_beside_the_candidate() -> None:
    canary, primary, primary_rate = fetch(step(120, 1080), "response_time_p95", "response_time_p95_primary",
                                          "error_rate_primary")
    assert (canary.value, primary.value, primary.samples) == (1004.0, 2.0, 1080)
    assert primary_rate.success and primary_rate.value == 0.0


def test_too_few_canary_answers_cannot_be_measured() -> None:
    """A 6 s test at 20 req/s gives the 10 % canary ~12 answers: could not measure, never a pass."""
    values = fetch(step(MIN_SLOT_SAMPLES - 1, 108), "response_time_p95", "error_rate", "throughput")
    assert all(not v.success and v.value is None for v in values)
    assert f"only {MIN_SLOT_SAMPLES - 1} request(s)" in values[0].message and f"at least {MIN_SLOT_SAMPLES}" in values[0].message
    (enough,) = fetch(step(MIN_SLOT_SAMPLES, 108), "response_time_p95")
    assert enough.success


def test_a_canary_that_got_no_traffic_cannot_be_measured() -> None:
    stored = step(0, 200)
    del stored["slots"]["canary"]
    (p95,) = fetch(stored, "response_time_p95")
    assert not p95.success and "only 0 request(s)" in p95.message


def test_a_public_load_without_slot_marks_never_passes_for_the_canary() -> None:
    """A router that does not name the slot (Istio, Knative): the mix is not the canary's value."""
    stored = {"requests": 1000, "response_time_p95": 3.0, "measured_at": "public"}
    (p95,) = fetch(stored, "response_time_p95")
    assert not p95.success and p95.value is None and "$DEPLOYMENT" in p95.message


def test_unanswered_requests_count_against_the_canary_error_rate() -> None:
    (rate,) = fetch(step(100, 900, unattributed=25), "error_rate")
    assert rate.success and rate.value == 0.2  # 25 of 125: the worst case
    (primary,) = fetch(step(100, 900, unattributed=25), "error_rate_primary")
    assert primary.value == 0.0


def test_measurements_of_the_candidate_url_read_as_before() -> None:
    """A blue/green stage (tests against the candidate's own URL): plain values; a slot name is refused."""
    stored = {"requests": 120, "response_time_p95": 5.0}
    plain, slot = fetch(stored, "response_time_p95", "response_time_p95_primary")
    assert plain.success and plain.value == 5.0
    assert not slot.success and "not split by slot" in slot.message
    (unknown,) = fetch(stored, "response_time_p95_blue")
    assert not unknown.success and "not a builtin indicator" in unknown.message


@given(canary=st.integers(0, 400), primary=st.integers(0, 4000), lost=st.integers(0, 50))
def test_property_a_canary_value_is_given_only_with_enough_of_its_own_answers(canary: int, primary: int, lost: int) -> None:
    """Whatever the split: a value only with >= MIN_SLOT_SAMPLES canary answers, and then with
    exactly that many samples; the error rate never below the canary's own."""
    p95, rate = fetch(step(canary, primary, unattributed=lost), "response_time_p95", "error_rate")
    assert p95.success is (canary >= MIN_SLOT_SAMPLES) and rate.success is (canary >= MIN_SLOT_SAMPLES)
    if p95.success:
        assert p95.samples == canary and rate.value is not None and rate.value >= 0.0


def test_a_load_on_the_candidates_own_url_is_read_whole_even_when_it_names_its_slot() -> None:
    """Blue/green staging tests the candidate's stable slot URL, which the local router serves
    too (x-sluice-slot: direct or canary): not a split load, so the whole measurement counts
    (seen failing: every staging SLI was "could not measure", so 0.10.3 never passed staging)."""
    for slots in ({}, {"canary": share(120, 5.0)}):
        stored = {"requests": 120, "response_time_p95": 5.0, "slots": slots, "unattributed": 0}
        (p95,) = fetch(stored, "response_time_p95")
        assert p95.success and p95.value == 5.0, p95.message
