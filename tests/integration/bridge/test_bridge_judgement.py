"""The web view shows inconclusive evaluations as such, the noise-aware comparison's test, and the
what-if replay of a service's history (POST, size-limited, nothing written) — all escaped."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.support.stories import write_stories

from sluice.adapters.state.local import LocalStore
from sluice.bridge import views
from sluice.bridge.app import Bridge
from sluice.core.scoring import Measurement, Subject, evaluate
from sluice.core.slo import parse_slo
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
TUTORIAL_SLO = (ROOT / "examples" / "sockshop" / "slo.yaml").read_text()
LOOSER = TUTORIAL_SLO.replace('"<600"', '"<1200"').replace('- "<=+10%"', "").replace(
    "    comparison:\n      method: mann_whitney\n      confidence: 0.95\n", "")
EVIL = '<img src=x onerror="alert(1)">'


def inconclusive_doc() -> dict[str, Any]:
    slo = parse_slo({"objectives": [{"sli": EVIL, "pass": [{"criteria": ["<600"]}]}], "total_score": {"pass": "90%"}}, "s")
    doc = evaluate(slo, [Measurement(EVIL, None, False, f"prometheus: {EVIL}")],
        subject=Subject(id="ev-1")).to_dict()
    return {**doc, "image": "carts:0.10.4", "time": "2026-01-01T00:00:00Z", "context": "c"}


def test_evaluation_page_marks_inconclusive_with_its_reasons() -> None:
    """The verdict chip is followed by an 'inconclusive' chip; the reasons are listed (escaped)."""
    html = views.evaluation_page("", "p", "staging", "carts", inconclusive_doc(), [])
    assert 'class="chip inconclusive"' in html and "INCONCLUSIVE" in html
    assert "&lt;img src=x" in html and "<img" not in html


def test_heatmap_score_cell_of_an_inconclusive_evaluation_has_its_own_class() -> None:
    """The score cell says '?' and carries the inconclusive class (its own colour); the legend shows it."""
    html = views.history_page("", "p", "staging", "carts", [inconclusive_doc()], 0)
    cell = re.search(r'<tr class="score-row">.*?</tr>', html, re.S)
    assert cell is not None and "cell fail inconclusive" in cell.group(0) and "0 ?" in cell.group(0)
    assert "? inconclusive" in html


def test_noise_check_is_shown_on_the_evaluation_page() -> None:
    """A noise-aware objective's test, effect size and reason appear beside its message."""
    doc = inconclusive_doc()
    doc["indicators"][0]["noise"] = [{
        "criteria": "<=+10%", "method": "mann_whitney", "outcome": "noise", "reason": f"not significant {EVIL}",
        "difference": 2.0, "confidence": 0.95, "noise_floor": None,
        "test": {"alternative": "greater", "n_candidate": 600, "n_baseline": 600, "u": 1.0, "z": 1.0,
                 "p_value": 0.143, "effect": 0.518, "shift": 0.1},
    }]
    html = views.evaluation_page("", "p", "staging", "carts", doc, [])
    assert 'data-outcome="noise"' in html and "p = 0.143" in html and "effect A = 0.52" in html
    assert "<img" not in html


#: A same-site form POST: the Origin of the page and the double-submit CSRF cookie and field.
TOKEN = "0" * 32
SAME_SITE = {"Origin": "http://bridge.test", "Host": "bridge.test", "Cookie": f"sluice_csrf={TOKEN}"}


def post(bridge: Bridge, path: str, form: dict[str, str]):  # type: ignore[no-untyped-def]
    return bridge.handle("POST", path, {}, {**form, "csrf": TOKEN}, SAME_SITE)


def test_a_cross_site_replay_post_is_refused(bridge: Bridge) -> None:
    """The replay form is a POST like the approval: another site's page cannot submit it."""
    _, status, _ = bridge.handle("POST", "/history/sockshop/staging/carts/replay", {}, {"slo": LOOSER},
                                 {"Origin": "http://evil.example", "Host": "bridge.test"})
    assert status == 403


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Bridge:
    stories = write_stories(tmp_path_factory.mktemp("state"))
    return Bridge(Records(LocalStore(stories.state_dir)), lambda event: None)


def test_history_page_offers_the_replay_form(bridge: Bridge) -> None:
    """The history page has a POST form (multipart: paste or upload) to replay under another SLO."""
    body, status, _ = bridge.handle("GET", "/history/sockshop/staging/carts", {}, {})
    assert status == 200
    assert 'action="/history/sockshop/staging/carts/replay#replay"' in str(body) and 'enctype="multipart/form-data"' in str(body)


def test_replay_recolours_and_marks_the_changed_cells(bridge: Bridge) -> None:
    """Under a looser SLO the 0.10.2 score cell and its p95 cell turn green and are marked as changed."""
    body, status, _ = post(bridge, "/history/sockshop/staging/carts/replay", {"slo": LOOSER})
    html = str(body)
    assert status == 200
    changed = re.findall(r'<td class="cell (\w+) changed" data-status="\w+" data-was="(\w+)">', html)
    assert changed == [("pass", "fail"), ("pass", "fail")]  # the score cell and response_time_p95 of 0.10.2
    assert "1 fail→pass" in html and "0 pass→fail" in html
    assert 'data-transition="fail→pass"' in html


def test_uploaded_file_wins_over_the_textarea(bridge: Bridge) -> None:
    """An uploaded file (the function passes it as the field slo_file) is replayed instead of the textarea."""
    body, status, _ = post(bridge, "/history/sockshop/staging/carts/replay", {"slo": "", "slo_file": LOOSER})
    assert status == 200 and "1 fail→pass" in str(body)


@pytest.mark.parametrize(
    ("form", "status", "fragment"),
    [
        ({"slo": ""}, 400, "slo: paste an SLO"),
        ({"slo": "objectives: [\n"}, 400, "not valid YAML"),
        ({"slo": "objectives: []\n"}, 400, "total_score"),
        ({"slo": "x" * (views.REPLAY_SLO_LIMIT + 1)}, 413, "larger than 64 KiB"),
        ({"slo": f"objectives: [{{sli: '{EVIL}', pass: [{{criteria: ['<1']}}]}}]\ntotal_score: {{pass: '{EVIL}'}}\n"}, 400,
         "total_score.pass"),
    ],
)
def test_bad_slo_is_named_and_kept_in_the_form(bridge: Bridge, form: dict[str, str], status: int, fragment: str) -> None:
    """A missing, malformed, invalid or too large SLO: the history page again with the problem, escaped."""
    body, got, _ = post(bridge, "/history/sockshop/staging/carts/replay", form)
    html = str(body)
    assert got == status and fragment in html and 'class="notice fail replay-problem"' in html
    assert "<img" not in html


def test_replay_of_an_unknown_service_is_404(bridge: Bridge) -> None:
    """Nothing a request names that does not exist is created; it is a 404 naming it."""
    body, status, _ = post(bridge, "/history/sockshop/staging/orders/replay", {"slo": LOOSER})
    assert status == 404 and "orders" in str(body)


def test_alias_bomb_slo_is_refused_quickly(bridge: Bridge) -> None:
    """YAML aliases repeating one objective and one criteria list thousands of times (a small text that
    would expand to millions of criteria) are refused as too many, before anything is scored."""
    crits = ", ".join(["*c"] * 2000)
    objs = ", ".join(["*o"] * 2000)
    text = (f"x: &c '<600'\ny: &l [{crits}]\nz: &o {{sli: rt, pass: [{{criteria: *l}}]}}\n"
            f"objectives: [{objs}]\ntotal_score: {{pass: 90%}}\n")
    assert len(text.encode()) < views.REPLAY_SLO_LIMIT
    body, status, _ = post(bridge, "/history/sockshop/staging/carts/replay", {"slo": text})
    assert status == 400 and "expected at most 1000 objectives, found 2000" in str(body)


def test_project_page_names_a_stage_policy_other_than_fail() -> None:
    """A stage that holds or retries inconclusive evaluations says so under its name."""
    view = {"project": "p", "stages": [
        {"name": "dev", "deployment_strategy": "direct", "test_strategy": "functional", "services": [],
         "on_inconclusive": {"action": "fail"}},
        {"name": "staging", "deployment_strategy": "blue_green_service", "test_strategy": "performance", "services": [],
         "on_inconclusive": {"action": "retry", "max_retries": 2}},
    ]}
    html = views.project_page("", view, 0)
    assert html.count("inconclusive:") == 1 and "inconclusive: retry ×2" in html
