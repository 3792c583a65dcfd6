"""functions-framework source for every Sluice function (one image, one FUNCTION_TARGET each).

Each target imports only its own module on first use, so a function's cold start loads what
that function needs and nothing else::

    functions-framework --source functions/main.py --target deploy
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without install


def _call(module: str, request: Any) -> Any:
    return importlib.import_module(f"sluice.functions.{module}").main(request)


def deploy(request: Any) -> Any:
    return _call("deploy", request)


def test(request: Any) -> Any:
    return _call("test", request)


def evaluate(request: Any) -> Any:
    return _call("evaluate", request)


def sli(request: Any) -> Any:
    return _call("sli", request)


def gatekeeper(request: Any) -> Any:
    return _call("gatekeeper", request)


def eventlog(request: Any) -> Any:
    return _call("eventlog", request)


def intake(request: Any) -> Any:
    return _call("intake", request)


def bridge(request: Any) -> Any:
    return _call("bridge", request)


def echo(request: Any) -> Any:
    """A bare function used as the floor in bench/broker.py: replies the event it received."""
    return _call("echo", request)
