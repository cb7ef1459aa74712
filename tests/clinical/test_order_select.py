"""Order-select through the whole HTTP path (clock frozen at 2026-10-15): only the selected bone-
agent drafts are checked, what they do not say yet is skipped, and the rest of the order set still
counts (duplicates, companions).

Every test starts from a prepared patient whose selected order gets no card and changes one thing.
"""

from __future__ import annotations

import pytest

from fixtures.builder import medication_request
from tests.support.hook_http import ORDER_SELECT, PATIENT_VIEW, hook_poster, request_body
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    early,
    metastatic,
    new_patient,
    order,
    prepared,
    rules,
)


@pytest.fixture()
def select(frozen_order_sign_app):
    return hook_poster(frozen_order_sign_app, ORDER_SELECT)


def reference(resource: dict) -> str:
    return f"MedicationRequest/{resource['id']}"


def za_selected(p, **dosage) -> dict:
    """Zoledronic acid 4 mg as first selected: route known, dose and timing not yet."""
    return order(p, **{"dose_mg": None, "every": None, **dosage})


def denosumab_selected(p) -> dict:
    """Denosumab 120 mg (the product says the strength) as first selected: no dose or timing yet."""
    return order(p, "denosumab-120mg", dose_mg=None, every=None, route="subcutaneous")


def calcium_draft(p) -> dict:
    return medication_request(
        f"{p.patient_id}-calcium", p.patient_id, "calcium-vitamin-d", route="oral", every=(1, "d")
    )


def codes(cards: list[dict]) -> list[str]:
    return sorted(card["source"]["topic"]["code"] for card in cards)


# --- tolerant of what the order does not say yet --------------------------------------------------


@pytest.mark.parametrize(
    "draft",
    [
        za_selected,
        lambda p: za_selected(p, route=None),
        denosumab_selected,
        lambda p: order(p, dose_mg=4, every=(12, "wk")),
    ],
    ids=["za", "za-no-route", "denosumab-120", "za-complete"],
)
def test_a_selected_order_on_a_prepared_patient_gets_no_card(select, draft):
    p = prepared(metastatic(new_patient("select")))
    assert select(p, draft(p)) == []


@pytest.mark.parametrize("dose_mg, fires", [(None, False), (4, True), (3.3, False)])
def test_renal_dose_adjust_waits_for_a_dose(select, dose_mg, fires):
    # CrCl 45
    p = (
        prepared(metastatic(new_patient("select", age=70)), renal=False)
        .creatinine(7, 1.1)
        .weight(7, 60)
    )
    cards = select(p, za_selected(p, dose_mg=dose_mg))
    assert codes(cards) == (["renal-dose-adjust"] if fires else [])
    assert (
        not fires
        or actions(cards[0], "update")[0]["resource"]["dosageInstruction"][0]["doseAndRate"][0][
            "doseQuantity"
        ]["value"]
        == 3.3
    )


@pytest.mark.parametrize(
    "every, fires", [(None, False), ((4, "wk"), True), ((1, "mo"), True), ((6, "mo"), False)]
)
def test_adjuvant_denosumab_waits_for_an_interval(select, post, every, fires):
    p = prepared(early(new_patient("select")))
    draft = denosumab_order(p, 120, every=every)
    # 120 mg every 6 months is not the adjuvant schedule, but does not fit the 120 mg strength
    # (catalog rev. 2, denosumab-strength-schedule)
    other = ["denosumab-strength-schedule"] if every == (6, "mo") else []
    assert codes(select(p, draft)) == (["adjuvant-denosumab-not-recommended"] if fires else other)
    # order-sign reads a missing interval as the monthly schedule: the tolerance is
    # order-select's own
    if every is None:
        assert codes(post(p, draft)) == ["adjuvant-denosumab-not-recommended"]


# --- only the selected drafts are checked; the others still count ---------------------------------


@pytest.mark.parametrize(
    "selected, expected",
    [
        ("za", ["duplicate-bone-agent"]),
        ("denosumab", ["duplicate-bone-agent", "metastatic-schedule-inappropriate"]),
        (
            "both",
            ["duplicate-bone-agent", "duplicate-bone-agent", "metastatic-schedule-inappropriate"],
        ),
        ("calcium", []),
        ("unknown-id", []),
    ],
)
def test_unselected_bone_agent_drafts_count_as_duplicates_but_get_no_cards(
    select, selected, expected
):
    p = prepared(metastatic(new_patient("select")))
    za, dmab, calcium = za_selected(p), denosumab_order(p, 60, suffix="dmab"), calcium_draft(p)
    chosen = {
        "za": [za],
        "denosumab": [dmab],
        "both": [za, dmab],
        "calcium": [calcium],
        "unknown-id": [dict(za, id="elsewhere")],
    }[selected]
    cards = select(p, za, dmab, calcium, selections=[reference(r) for r in chosen])
    assert codes(cards) == expected
    for card in cards:
        if card["source"]["topic"]["code"] == "duplicate-bone-agent":
            assert card["indicator"] == "warning" and card["selectionBehavior"] == "at-most-one"
            assert sorted(a["resourceId"] for a in actions(card, "delete")) == sorted(
                [reference(za), reference(dmab)]
            )


@pytest.mark.parametrize(
    "other, indicator", [("zoledronic-acid-4mg", "critical"), ("alendronate", "warning")]
)
def test_duplicate_severity_follows_the_unselected_drug(select, other, indicator):
    p = prepared(metastatic(new_patient("select")))
    za = za_selected(p)
    cards = select(
        p,
        za,
        order(p, other, dose_mg=None, every=None, route=None, suffix="other"),
        selections=[reference(za)],
    )
    assert rules(cards)["duplicate-bone-agent"]["indicator"] == indicator and len(cards) == 1


@pytest.mark.parametrize("drug, indicator", [("za", "info"), ("denosumab", "warning")])
@pytest.mark.parametrize("companion", [False, True])
def test_an_unselected_calcium_draft_satisfies_supplements(select, drug, indicator, companion):
    p = prepared(metastatic(new_patient("select")), supplements=False)
    draft = za_selected(p) if drug == "za" else denosumab_selected(p)
    cards = select(
        p, draft, *([calcium_draft(p)] if companion else []), selections=[reference(draft)]
    )
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == (
        [] if companion else [("supplements-missing", indicator)]
    )


# --- protocol -------------------------------------------------------------------------------------


def post_raw(app, service_id: str, body: dict):
    return app.test_client().post(f"/cds-services/{service_id}", json=body)


def assert_400(response, expression: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["expression"] == [
        expression
    ]
    assert outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "sent_to, built_for",
    [
        (ORDER_SELECT, PATIENT_VIEW),
        (PATIENT_VIEW, ORDER_SELECT),
        ("bonecds-order-sign", ORDER_SELECT),
    ],
)
def test_a_body_for_another_hook_is_400(frozen_order_sign_app, sent_to, built_for):
    p = prepared(metastatic(new_patient("select")))
    body = request_body(frozen_order_sign_app, built_for, p, za_selected(p))
    assert_400(post_raw(frozen_order_sign_app, sent_to, body), "hook")


@pytest.mark.parametrize("selections", [None, [], ["not a reference"], "MedicationRequest/x"])
def test_order_select_needs_selections(frozen_order_sign_app, selections):
    p = prepared(metastatic(new_patient("select")))
    body = request_body(frozen_order_sign_app, ORDER_SELECT, p, za_selected(p))
    if selections is None:
        del body["context"]["selections"]
    else:
        body["context"]["selections"] = selections
    response = post_raw(frozen_order_sign_app, ORDER_SELECT, body)
    assert_400(
        response,
        "context.selections" if selections != ["not a reference"] else "context.selections[0]",
    )


def test_no_bone_agent_selected_is_an_exact_empty_answer_without_reading_the_record(
    frozen_order_sign_app,
):
    p = prepared(metastatic(new_patient("select")))
    za, calcium = za_selected(p), calcium_draft(p)
    body = request_body(
        frozen_order_sign_app,
        ORDER_SELECT,
        p,
        za,
        calcium,
        selections=[reference(calcium)],
        prefetch_keys=[],
    )
    response = post_raw(frozen_order_sign_app, ORDER_SELECT, body)
    assert response.status_code == 200 and response.get_data() == b'{"cards":[]}'
    # the same request with the bone agent selected needs the record
    body["context"]["selections"] = [reference(za)]
    assert post_raw(frozen_order_sign_app, ORDER_SELECT, body).status_code == 412
