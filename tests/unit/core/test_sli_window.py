"""``$DURATION_SECONDS``: a range ending at the window's end stays inside the window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluice.core.sli_config import duration_placeholder, placeholder_values


@given(start=st.floats(0, 4e9, allow_nan=False), span=st.floats(1.0, 30 * 86400.0, allow_nan=False))
def test_the_range_never_reaches_before_the_window(start: float, span: float) -> None:
    """For a window of a second or more, ``[$DURATION_SECONDS]`` at its end covers the window
    but for less than a second at its start, and never a moment before it (where the build that
    ran in the slot before would be measured)."""
    end = start + span
    duration = duration_placeholder(start, end)
    seconds = int(duration.removesuffix("s"))
    assert end - seconds >= start - 1e-5
    assert end - seconds < start + 1.0
    assert placeholder_values("sockshop", "staging", "carts", "canary", duration, {})["DURATION_SECONDS"] == duration
