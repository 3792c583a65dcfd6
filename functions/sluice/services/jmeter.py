"""Run a JMeter plan (``jmeter -n``) against the deployment under test and read its results.

As Keptn's jmeter-service did, the target is passed as properties: ``-Jserver=<host>
-Jport=<port> -Jprotocol=<http|https>`` (plus the spec's own ``properties``), and the plan is run
in non-GUI mode with a CSV results file (``-l results.jtl``). The results file gives the report:
requests, errors, the error rate, and the latency percentiles and throughput that the builtin
SLI provider serves (the same measurement names as Sluice's own requests).

The run is bounded: JMeter (its whole process group) is stopped at the time limit, and the run
fails saying so. JMeter's shutdown listener is turned off (``jmeterengine.nongui.port=0``), so
nothing listens. Without JMeter, ``JMeterMissing`` says what to install.

JMeter is Apache JMeter 5.x (``make jmeter`` installs it from Maven Central into
``~/.cache/sluice/jmeter-5.6.3``; ``SLUICE_JMETER`` names another binary). Debian's ``jmeter``
2.13 cannot load plans with the XStream it ships with, so it is not looked for on PATH.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sluice.core.frozen import frozen
from sluice.errors import ConfigurationError
from sluice.loadgen import LogLinearHistogram

__all__ = ["DEFAULT_JMETER", "INSTALL_HINT", "JMeterMissing", "JMeterRun", "find_jmeter", "parse_results", "run_plan"]

#: Where ``make jmeter`` installs Apache JMeter.
DEFAULT_JMETER = Path.home() / ".cache" / "sluice" / "jmeter-5.6.3" / "bin" / "jmeter"
INSTALL_HINT = ("install Apache JMeter 5.x: 'make jmeter' (from Maven Central into ~/.cache/sluice/jmeter-5.6.3; "
                "needs maven and a JDK: apt-get install maven default-jdk-headless), or set SLUICE_JMETER to a jmeter 5.x binary")
#: Lines of JMeter's own log quoted when it fails.
LOG_TAIL = 5


class JMeterMissing(ConfigurationError):
    """No usable JMeter: the message names what to install."""


def find_jmeter(configured: str = "") -> str:
    """The JMeter binary: ``configured`` (SLUICE_JMETER) else ``make jmeter``'s; ``JMeterMissing`` otherwise."""
    candidate = Path(configured) if configured else DEFAULT_JMETER
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    where = f"SLUICE_JMETER={configured}" if configured else str(DEFAULT_JMETER)
    raise JMeterMissing(f"JMeter is not installed ({where} is missing): {INSTALL_HINT}")


@frozen
class JMeterRun:
    """One plan's results: counts, failures (label: message, a few), measurements, and whether
    JMeter ended by itself (``finished``) with which exit code."""

    plan: str
    requests: int
    errors: int
    measurements: Mapping[str, Any] = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    finished: bool = True
    exit_code: int = 0
    log_tail: str = ""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "requests": self.requests, "errors": self.errors, "error_rate": round(self.error_rate, 6),
                "failures": list(self.failures), "finished": self.finished, "exit_code": self.exit_code,
                **{k: v for k, v in self.measurements.items() if k.startswith("response_time") or k == "throughput"}}


def parse_results(plan: str, text: str) -> JMeterRun:
    """A CSV results file (JMeter's default ``.jtl`` with its header line) as a ``JMeterRun``."""
    rows = list(csv.DictReader(text.splitlines()))
    histogram = LogLinearHistogram()
    failures: list[str] = []
    errors = 0
    first, last = None, None
    for row in rows:
        try:
            elapsed = int(row.get("elapsed") or 0)
            stamp = int(row.get("timeStamp") or 0)
        except ValueError:
            continue
        histogram.record(max(elapsed, 0) * 1000)
        first = stamp if first is None else min(first, stamp)
        last = stamp + elapsed if last is None else max(last, stamp + elapsed)
        if (row.get("success") or "").strip().lower() != "true":
            errors += 1
            if len(failures) < 5:
                failures.append(f"{row.get('label', '')}: {row.get('responseCode', '')} {row.get('failureMessage') or row.get('responseMessage') or ''}".strip())
    requests = histogram.count
    measurements: dict[str, Any] = {"requests": requests}
    if requests:
        span_s = max((last or 0) - (first or 0), 1) / 1000.0
        measurements.update({
            "throughput": round(requests / span_s, 3),
            "error_rate": round(errors / requests, 6),
            "latency_histogram_us": histogram.compact(),
        })
        for name, value in (("response_time_avg", histogram.mean()), ("response_time_p50", histogram.percentile(50)),
                            ("response_time_p90", histogram.percentile(90)), ("response_time_p95", histogram.percentile(95)),
                            ("response_time_p99", histogram.percentile(99))):
            if value is not None:
                measurements[name] = round(value / 1000.0, 3)
    return JMeterRun(plan, requests, errors, measurements, tuple(failures))


def run_plan(jmeter: str, plan: str, text: str, base_url: str, limit_s: float,
             properties: Mapping[str, str] | None = None) -> JMeterRun:
    """Run plan ``text`` (named ``plan``) against ``base_url`` for at most ``limit_s`` seconds."""
    target = urlsplit(base_url)
    port = target.port or (443 if target.scheme == "https" else 80)
    with tempfile.TemporaryDirectory(prefix="sluice-jmeter-") as work:
        folder = Path(work)
        (folder / "plan.jmx").write_text(text)
        argv = [jmeter, "-n", "-t", str(folder / "plan.jmx"), "-l", str(folder / "results.jtl"),
                "-j", str(folder / "jmeter.log"),
                f"-Jserver={target.hostname or ''}", f"-Jport={port}", f"-Jprotocol={target.scheme}",
                "-Jjmeterengine.nongui.port=0", "-Jjmeter.save.saveservice.output_format=csv",
                "-Jjmeter.save.saveservice.print_field_names=true",
                *(f"-J{k}={v}" for k, v in (properties or {}).items())]
        process = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        finished = True
        try:
            process.communicate(timeout=max(limit_s, 0.1))
        except subprocess.TimeoutExpired:
            finished = False
            _stop(process)
        results = folder / "results.jtl"
        run = parse_results(plan, results.read_text(errors="replace") if results.exists() else "")
        log = folder / "jmeter.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL:]) if log.exists() else ""
        return JMeterRun(run.plan, run.requests, run.errors, run.measurements, run.failures, finished,
                         process.returncode if finished else -1, tail)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop JMeter and every process it started (its own session), politely then for good."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.communicate(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
