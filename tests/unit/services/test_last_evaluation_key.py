"""The newest evaluation has a key of its own in the evaluations record (issue 17): status reads
it without parsing the history; records stored before the key read the same."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.state.memory import MemoryStore
from sluice.ports.state import Record
from sluice.services.records import Records

evaluations = st.lists(
    st.fixed_dictionaries({"result": st.sampled_from(["pass", "warning", "fail"]), "score": st.floats(0, 100),
                           "slo_file": st.text(max_size=30)}),
    min_size=1, max_size=8,
)


def without_slo(doc: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in doc.items() if k != "slo_file"}


@settings(max_examples=40, deadline=None)
@given(evaluations)
def test_last_evaluation_is_the_newest_of_the_history(docs: list[dict]) -> None:  # type: ignore[type-arg]
    """After any appends, ``last_evaluation`` is the history's newest entry without its SLO text,
    also for a record written before the key existed."""
    records = Records(MemoryStore())
    assert records.last_evaluation("p", "s", "svc") is None
    for n, doc in enumerate(docs):
        records.append_evaluation("p", "s", "svc", {**doc, "id": f"e{n}"})
    newest = without_slo(records.evaluations("p", "s", "svc")[-1])
    assert records.last_evaluation("p", "s", "svc") == newest
    stored = records.store.get("evaluations.p.s.svc")
    assert stored is not None
    older = {k: v for k, v in stored.data.items() if k != "last"}
    records.store.put(Record(stored.name, older, stored.labels, stored.resource_version))
    assert records.last_evaluation("p", "s", "svc") == newest
