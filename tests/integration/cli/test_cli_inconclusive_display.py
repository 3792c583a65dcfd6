"""``sluice status`` and ``sluice get evaluations`` label an inconclusive evaluation as such, with its reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main
from sluice.core.scoring import Measurement, Subject, evaluate
from sluice.core.slo import parse_slo
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SHIPYARD = (ROOT / "examples" / "sockshop" / "shipyard.yaml").read_text()
SLO = parse_slo(yaml.safe_load((ROOT / "examples" / "sockshop" / "slo.yaml").read_text()), "slo.yaml")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Records:
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    records = Records(LocalStore(tmp_path / "state"))
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    for ident, tag, values in (
        ("e1", "0.10.1", [Measurement("response_time_p95", 48.0, samples=3000)]),
        ("e2", "0.10.4", [Measurement("response_time_p95", None, False, "no answer from SLI provider within 120 s")]),
    ):
        doc = evaluate(SLO, values,
            subject=Subject(id=ident, project="sockshop", stage="staging", service="carts")).to_dict()
        records.append_evaluation("sockshop", "staging", "carts",
                                  {**doc, "image": f"carts:{tag}", "time": f"2026-01-01T00:0{ident[-1]}:00Z", "context": ident})
    return records


def test_get_evaluations_labels_inconclusive(state: Records, capsys: pytest.CaptureFixture[str]) -> None:
    """The inconclusive evaluation reads 'FAIL · INCONCLUSIVE' with its reason; the conclusive one plain 'PASS'."""
    assert main(["get", "evaluations", "--project", "sockshop", "--stage", "staging", "--service", "carts"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "carts:0.10.4  FAIL · INCONCLUSIVE  score 0.00" in lines[0]
    assert lines[1].strip() == "inconclusive: response_time_p95: could not measure: no answer from SLI provider within 120 s"
    assert any("carts:0.10.1  PASS  score 100.00" in line for line in lines)


def test_status_labels_the_last_evaluation(state: Records, capsys: pytest.CaptureFixture[str]) -> None:
    """sluice status shows the last evaluation as inconclusive with the reason; --output json carries the marker."""
    assert main(["status", "--project", "sockshop"]) == 0
    out = capsys.readouterr().out
    assert "last evaluation: FAIL · INCONCLUSIVE score 0.00 for carts:0.10.4" in out
    assert "inconclusive: response_time_p95: could not measure" in out
    assert main(["status", "--project", "sockshop", "--output", "json"]) == 0
    import json

    view = json.loads(capsys.readouterr().out)
    staging = next(s for s in view["stages"] if s["name"] == "staging")
    assert staging["services"][0]["last_evaluation"]["inconclusive"] is True
