"""Settings from the environment: every ``SLUICE_*`` name is known, or refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.config import NOT_SETTINGS, Settings
from sluice.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[3]


def test_a_misspelt_setting_is_refused_naming_it_and_the_nearest_name() -> None:
    """SLUICE_TEST_LIMT is an error that names it and suggests SLUICE_TEST_LIMIT."""
    with pytest.raises(ConfigurationError, match=r"SLUICE_TEST_LIMT \(did you mean SLUICE_TEST_LIMIT\?\)"):
        Settings.from_env({"SLUICE_TEST_LIMT": "90"})


def test_every_unknown_name_is_named_at_once() -> None:
    """Two unknown names are both reported in one error."""
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({"SLUICE_NAMESPCE": "x", "SLUICE_ZZZ": "1", "SLUICE_STATE": "local"})
    assert "SLUICE_NAMESPCE" in str(err.value) and "SLUICE_ZZZ" in str(err.value)


def test_names_that_are_not_settings_and_other_variables_pass() -> None:
    """The test worker's event, the test suite's knobs and non-Sluice variables are not refused."""
    environ = {name: "1" for name in NOT_SETTINGS} | {"PATH": "/bin", "K_SINK": "http://sink/", "SLUICE": "x"}
    assert Settings.from_env(environ).sink == "http://sink/"


@given(st.builds(
    Settings,
    state=st.sampled_from(["local", "configmap", "memory"]),
    namespace=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    backend=st.sampled_from(["local", "kubernetes", "knative", "noop"]),
    test_limit_s=st.floats(1, 10_000), performance_duration_s=st.floats(0, 10_000),
    sli_timeout_s=st.floats(1, 1000), deploy_timeout_s=st.floats(1, 1000),
    prometheus_url=st.sampled_from(["http://127.0.0.1:9090", "http://prometheus.example:9090"]),
    archive=st.sampled_from(["", "s3"]),
))
def test_to_env_round_trips_through_from_env(settings: Settings) -> None:
    """What ``to_env`` hands a child process reads back as the same settings (the sink aside)."""
    assert Settings.from_env(settings.to_env()) == settings


def _names_in(paths: list[Path]) -> set[str]:
    """The SLUICE_ names in ``paths``, but for the typos shown on purpose ("X (did you mean Y?)")."""
    names: set[str] = set()
    typos: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r"\bSLUICE_[A-Z0-9_]*[A-Z0-9]\b", text))
        typos.update(re.findall(r"\b(SLUICE_[A-Z0-9_]*[A-Z0-9]) \(did you mean", text))
    return names - typos


def test_no_name_the_project_sets_is_refused() -> None:
    """Every SLUICE_* name in the Knative manifests and Triggers, examples, docs, README, Makefile,
    Dockerfile, CI, tools and tests is a setting or listed as not one (none is wrongly refused)."""
    paths = [ROOT / "README.md", ROOT / "Makefile", ROOT / "Dockerfile"]
    for folder, pattern in [("knative", "*.yaml"), ("triggers", "*.yaml"), ("examples", "*"), ("docs", "*.md"),
                            ("tools", "*"), ("tests", "*"), ("bench", "*"), ("functions", "*.py"), (".ci", "*")]:
        paths += [p for p in (ROOT / folder).rglob(pattern) if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".yml", ".sh", "")
                  and p != Path(__file__)]
    names = _names_in(paths)
    assert names, "found no SLUICE_ names at all: the scan is broken"
    Settings.from_env(dict.fromkeys(names, ""))
