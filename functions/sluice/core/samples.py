"""Latency samples behind an indicator, kept compact, and the rank test that compares two of them.

A :class:`Distribution` is a histogram: sorted ``(value, count)`` buckets in the indicator's unit
(milliseconds for the builtin provider's latencies). The load generator's log-linear histogram is
re-bucketed to 16 buckets per power of two before it is stored (each bucket at most 6.25 % wide),
so a distribution has at most :data:`MAX_BUCKETS` buckets — a few KiB — whatever the number of
requests behind it.

:func:`mann_whitney` is the Mann–Whitney U test over two such histograms (equal values are ties,
with the usual tie correction; the normal approximation, which is accurate for the hundreds of
samples a performance test gives). It answers whether the candidate is *stochastically* greater
(or smaller) than the baseline, with the effect size as the probability that a random candidate
sample lies further in that direction than a random baseline sample (Vargha–Delaney A, ties
counted ½: 0.5 = no difference; 0.56 / 0.64 / 0.71 are the customary small / medium / large
effects) and the Hodges–Lehmann shift (the median of all candidate − baseline differences).

Pure: no I/O, no clock; standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen

__all__ = [
    "MAX_BUCKETS",
    "Alternative",
    "Distribution",
    "RankTest",
    "distribution_from_dict",
    "mann_whitney",
]

#: The most buckets a stored distribution may have (16 per power of two over 64 powers).
MAX_BUCKETS = 1024


class Alternative(FastStrEnum):
    """What the test looks for: the candidate's values tend to be greater, or smaller."""

    GREATER = "greater"
    LESS = "less"


@frozen(slots=True)
class Distribution:
    """Sorted ``(value, count)`` buckets, values distinct and finite, counts ≥ 1."""

    buckets: tuple[tuple[float, int], ...]

    @property
    def count(self) -> int:
        return sum(c for _, c in self.buckets)

    def to_dict(self) -> dict[str, object]:
        return {"buckets": [[v, c] for v, c in self.buckets]}

    @staticmethod
    def of(pairs: Iterable[tuple[float, int]]) -> Distribution:
        """Merge pairs with equal values, drop empty ones, sort by value."""
        merged: dict[float, int] = {}
        for value, count in pairs:
            if count > 0:
                merged[float(value)] = merged.get(float(value), 0) + int(count)
        return Distribution(tuple(sorted(merged.items())))

    @staticmethod
    def merge(parts: Iterable[Distribution]) -> Distribution:
        """All samples of ``parts`` together (e.g. the baseline of several previous evaluations)."""
        return Distribution.of(pair for part in parts for pair in part.buckets)


def distribution_from_dict(data: object) -> tuple[Distribution | None, str]:
    """(the distribution, "") or (None, what is wrong) for a stored ``{"buckets": [[v, c], ...]}``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("buckets"), list):
        return None, "expected {buckets: [[value, count], ...]}"
    raw = data["buckets"]
    if len(raw) > MAX_BUCKETS:
        return None, f"expected at most {MAX_BUCKETS} buckets, found {len(raw)}"
    pairs: list[tuple[float, int]] = []
    for i, item in enumerate(raw):
        ok = (
            isinstance(item, list | tuple) and len(item) == 2
            and isinstance(item[0], int | float) and not isinstance(item[0], bool) and math.isfinite(item[0])
            and isinstance(item[1], int) and not isinstance(item[1], bool) and item[1] >= 0
        )
        if not ok:
            return None, f"buckets[{i}]: expected [finite value, whole count >= 0], found {item!r}"
        pairs.append((float(item[0]), int(item[1])))
    return Distribution.of(pairs), ""


@frozen(slots=True)
class RankTest:
    """The outcome of :func:`mann_whitney`.

    ``u`` counts (candidate, baseline) pairs in the direction of ``alternative`` (ties count ½);
    ``p_value`` is one-sided; ``effect`` = u / (n_candidate × n_baseline), the probability that a
    candidate sample lies in that direction of a baseline sample (0.5 = no difference, 1 = all
    of them); ``shift`` = the Hodges–Lehmann estimate of candidate − baseline.
    """

    alternative: Alternative
    n_candidate: int
    n_baseline: int
    u: float
    z: float
    p_value: float
    effect: float
    shift: float

    def to_dict(self) -> dict[str, object]:
        return {
            "alternative": self.alternative.value, "n_candidate": self.n_candidate, "n_baseline": self.n_baseline,
            "u": self.u, "z": self.z, "p_value": self.p_value, "effect": self.effect, "shift": self.shift,
        }


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney(candidate: Distribution, baseline: Distribution, alternative: Alternative) -> RankTest:
    """One-sided Mann–Whitney U test of ``candidate`` against ``baseline`` (both non-empty).

    Raises ``ValueError`` for an empty distribution.
    """
    n1, n2 = candidate.count, baseline.count
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney needs samples on both sides")
    # Merge the two histograms by value: pairs greater / tied, and the tie groups.
    values = sorted({v for v, _ in candidate.buckets} | {v for v, _ in baseline.buckets})
    cand = dict(candidate.buckets)
    base = dict(baseline.buckets)
    below_base = 0  # baseline samples strictly below the current value
    greater = 0.0  # pairs with candidate > baseline, ties ½
    tie_term = 0.0
    for v in values:
        c, b = cand.get(v, 0), base.get(v, 0)
        greater += c * below_base + 0.5 * c * b
        below_base += b
        t = c + b
        tie_term += t * t * t - t
    pairs = n1 * n2
    u = greater if alternative is Alternative.GREATER else pairs - greater
    effect = u / pairs
    n = n1 + n2
    mean = pairs / 2.0
    variance = pairs / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        z = 0.0
        p_value = 0.5 if u == mean else (0.0 if u > mean else 1.0)
    else:
        z = (u - mean - 0.5) / math.sqrt(variance)  # continuity correction, towards the null
        p_value = _normal_sf(z)
    return RankTest(
        alternative=alternative, n_candidate=n1, n_baseline=n2, u=u, z=round(z, 6),
        p_value=min(1.0, max(0.0, p_value)), effect=effect, shift=_hodges_lehmann(candidate.buckets, baseline.buckets),
    )


def _hodges_lehmann(cand: Sequence[tuple[float, int]], base: Sequence[tuple[float, int]]) -> float:
    """The weighted median of all pairwise differences candidate − baseline."""
    diffs = sorted((cv - bv, cc * bc) for cv, cc in cand for bv, bc in base)
    total = sum(w for _, w in diffs)
    half = total / 2.0
    seen = 0
    for i, (d, w) in enumerate(diffs):
        seen += w
        if seen > half:
            return d
        if seen == half:  # an even split: the midpoint of this difference and the next
            return (d + diffs[i + 1][0]) / 2.0 if i + 1 < len(diffs) else d
    return diffs[-1][0]  # pragma: no cover - the weights always pass half
