"""Test units as detached local processes (the embedded default)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class LocalProcessLauncher:
    """Starts ``python -m sluice.functions.testworker`` in its own session, event on stdin."""

    def __init__(self, log_dir: str | Path, environ: Mapping[str, str]) -> None:
        self.log_dir = Path(log_dir)
        self.environ = dict(environ)

    def __call__(self, event: dict[str, Any]) -> None:
        import subprocess  # cold start: only a launch needs it (the test function's first event may launch nothing)

        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "test-worker.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "sluice.functions.testworker"],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.environ,
            )
        assert worker.stdin is not None
        worker.stdin.write(json.dumps(event).encode())
        worker.stdin.close()
