"""functions-framework source for every Sluice function (one image, one FUNCTION_TARGET each).

Each target imports only its own module on first use, so a function's cold start loads what
that function needs and nothing else::

    functions-framework --source functions/main.py --target deploy

Before that, it installs the cache of ``@frozen``'s compiled ``__init__`` (``sluice.functions.inits``),
so a cold start loads them from beside the bytecode instead of compiling them.

The objects already loaded when this file is (the framework's: Flask, Werkzeug, CloudEvents;
some 33,000 the collector tracks) live as long as the process, and so do a function's modules once
loaded: both are frozen out of the cyclic garbage collector (``gc.freeze``), so no full collection
walks them again. That does not change the time to the first answer (on the real path, gunicorn's
worker makes its first full collection at exit), but it spares every later full collection the
framework's heap (some 35 ms of CPU each) and cuts the CPU a process uses from spawn to exit by
about a quarter (bench/coldstart.py's "CPU" column: 0.73× the bare hello's instead of 1.05×).
"""

from __future__ import annotations

import gc
import importlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without install
gc.freeze()  # the framework's objects, loaded before this file

from sluice.functions.inits import install  # noqa: E402  (the path above first)

install()  # @frozen's compiled inits: loaded from beside the bytecode, not compiled again

_LOADED: set[str] = set()


def _call(module: str, request: Any) -> Any:
    loaded = importlib.import_module(f"sluice.functions.{module}")
    if module not in _LOADED:  # its first event: its modules are loaded for good, freeze them too
        _LOADED.add(module)
        gc.freeze()
    return loaded.main(request)


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
