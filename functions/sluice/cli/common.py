"""What every sub-command shares: settings (flag > environment > default), the store, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sluice.config import Settings
from sluice.errors import ValidationError
from sluice.ports.state import StateStore


def add_state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help="local state directory (default .sluice, or SLUICE_STATE_DIR)")


def add_broker_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="broker URL (default SLUICE_BROKER_URL, else the local broker)")


def add_output_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text", help="output format")


def settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        os.environ, state_dir=getattr(args, "state_dir", None), broker_url=getattr(args, "broker", None)
    )


def store(args: argparse.Namespace) -> StateStore:
    from sluice.compose import build_store

    return build_store(settings(args))


def records(args: argparse.Namespace) -> Any:
    from sluice.compose import build_records

    return build_records(settings(args))


def secrets(args: argparse.Namespace) -> Any:
    """The secret store beside the state store (0600 files locally, Secrets on a cluster)."""
    from sluice.compose import build_secrets

    return build_secrets(settings(args))


def read_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ValidationError(what, [f"cannot read {path}: {err.strerror}"]) from err


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
