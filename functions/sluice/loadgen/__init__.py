"""Sluice's load generator: an asyncio-protocol HTTP/1.1 client on uvloop, open-loop constant
arrival rate (no coordinated omission) or closed-loop virtual users, latencies in a log-linear
histogram, a bounded run that stops by itself, spread over one process per core when one is
not enough.

    from sluice.loadgen import LoadProfile, LoadRequest, Mode, run_load_sync
    report = run_load_sync("http://127.0.0.1:8080", LoadProfile((LoadRequest("/"),), duration_s=10, rate=50))
    report.measurements()  # {"throughput": ..., "response_time_p95": ..., ...}
"""

from sluice.loadgen.engine import ProgressCallback, rfc3339, run_load, run_load_sync
from sluice.loadgen.histogram import LogLinearHistogram
from sluice.loadgen.model import LoadProfile, LoadReport, LoadRequest, Mode, SlotReport

__all__ = [
    "LoadProfile",
    "LoadReport",
    "LoadRequest",
    "LogLinearHistogram",
    "Mode",
    "ProgressCallback",
    "SlotReport",
    "rfc3339",
    "run_load",
    "run_load_sync",
]
