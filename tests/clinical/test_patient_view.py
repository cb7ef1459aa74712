"""Patient-view review through the whole HTTP path (clock frozen at 2026-10-15): each finding on
both sides of its thresholds, the draft orders it suggests, the incomplete-record card, and the
protocol around the new services.

Every base patient gets exactly one review card; each test changes one thing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from fixtures.builder import ANCHOR_INSTANT, PatientBuilder
from hooks.fhir_read import shift_months
from tests.support.hook_http import (
    ORDER_SELECT,
    PATIENT_VIEW,
    check_regimen_suggestions,
    hook_poster,
    request_body,
)
from tests.support.order_sign_http import early, metastatic, new_patient, order, rules

# days back to the same calendar day 7 months before the anchor (2026-03-15): the review window's
# edge
SEVEN_MONTHS = (ANCHOR_INSTANT.date() - shift_months(ANCHOR_INSTANT, -7).date()).days
# (days ago, counts as within 7 months): a day too old, the edge day (at the anchor's hour and
# earlier that day), a day newer
WINDOW_EDGE = [
    (SEVEN_MONTHS + 1, False),
    (SEVEN_MONTHS + 0.4, True),
    (SEVEN_MONTHS, True),
    (SEVEN_MONTHS - 1, True),
]

METASTASES, ADJUVANT, BONE_LOSS, DENOSUMAB = (
    "review-bone-metastases-untreated",
    "review-adjuvant-candidate",
    "review-bone-loss-untreated",
    "review-denosumab-stopped",
)
INCOMPLETE = "record-incomplete"
CARDS = {
    METASTASES: ("warning", ("za-12-weekly", "denosumab-120-4-weekly")),
    # clodronate has no US product (ATC code only): named in the text, not drafted
    ADJUVANT: ("info", ("za-6-monthly",)),
    BONE_LOSS: ("info", ("za-6-monthly", "alendronate-weekly")),
    DENOSUMAB: ("warning", ("alendronate-weekly", "za-6-monthly")),
}


def recent(p: PatientBuilder) -> PatientBuilder:
    """Breast cancer diagnosed 200 days ago: within the adjuvant card's 12 months (revision 2)."""
    return p.condition("breast-cancer", onset_days_ago=200)


def premenopausal(age: int = 50) -> PatientBuilder:
    """Early breast cancer, coded premenopausal, no bone-loss indication: no review card."""
    return early(new_patient("pv", age=age)).condition("premenopausal")


BASES = {
    METASTASES: lambda: metastatic(new_patient("pv")),
    ADJUVANT: lambda: recent(new_patient("pv", age=64)),
    BONE_LOSS: lambda: premenopausal().t_score(100, -2.5),
    DENOSUMAB: lambda: premenopausal().administration("denosumab-60mg", 300, dose_mg=60),
}


@pytest.fixture()
def view(frozen_order_sign_app):
    return hook_poster(frozen_order_sign_app, PATIENT_VIEW)


def only(cards: list[dict], *expected: str) -> dict[str, dict]:
    found = rules(cards)
    assert sorted(found) == sorted(expected), sorted(found)
    return found


@pytest.mark.parametrize("rule", list(BASES))
def test_each_finding_suggests_its_regimens_as_draft_orders(view, rule):
    p = BASES[rule]()
    card = only(view(p), rule)[rule]
    indicator, regimens = CARDS[rule]
    assert card["indicator"] == indicator
    check_regimen_suggestions(card, p, regimens)


# --- on a bone agent: an active order, or a dose within 7 calendar months -------------------------


@pytest.mark.parametrize("rule", [METASTASES, ADJUVANT, BONE_LOSS])
@pytest.mark.parametrize("days_ago, within", WINDOW_EDGE)
@pytest.mark.parametrize("given_as", ["administration", "completed order"])
def test_a_bone_agent_dose_within_seven_calendar_months_counts_as_treated(
    view, rule, days_ago, within, given_as
):
    p = BASES[rule]()
    if given_as == "administration":
        p.administration("zoledronic-acid-4mg", days_ago, dose_mg=4)
    else:
        p.medication(
            "zoledronic-acid-4mg", days_ago, status="completed", dose_mg=4, route="intravenous"
        )
    only(view(p), *([] if within else [rule]))


@pytest.mark.parametrize(
    "status, treated",
    [
        ("active", True),
        ("on-hold", True),
        ("stopped", False),
        ("completed", False),
        ("cancelled", False),
        ("entered-in-error", False),
    ],
)
def test_an_active_bone_agent_order_counts_however_old(view, status, treated):
    p = BASES[METASTASES]().medication(
        "denosumab-120mg", 400, status=status, dose_mg=120, route="subcutaneous", every=(4, "wk")
    )
    only(view(p), *([] if treated else [METASTASES]))


# --- denosumab stopped ----------------------------------------------------------------------------


@pytest.mark.parametrize("days_ago, within", WINDOW_EDGE)
@pytest.mark.parametrize("product", ["denosumab-60mg", "denosumab-120mg"])
def test_denosumab_is_stopped_only_more_than_seven_calendar_months_after_the_last_dose(
    view, days_ago, within, product
):
    p = premenopausal().administration(product, days_ago)
    card = only(view(p), *([] if within else [DENOSUMAB])).get(DENOSUMAB)
    assert (
        card is None
        or f"last dose on {(ANCHOR_INSTANT - timedelta(days=days_ago)).date().isoformat()}"
        in card["detail"]
    )


@pytest.mark.parametrize(
    "status, days_ago, stopped",
    [
        ("active", 300, False),
        ("on-hold", 300, False),
        ("stopped", 300, True),
        ("completed", 300, True),
        ("completed", 150, False),
    ],
)
def test_denosumab_order_status_and_date(view, status, days_ago, stopped):
    p = premenopausal().medication(
        "denosumab-60mg", days_ago, status=status, dose_mg=60, route="subcutaneous", every=(6, "mo")
    )
    only(view(p), *([DENOSUMAB] if stopped else []))


@pytest.mark.parametrize(
    "bisphosphonate, stopped",
    [
        (
            lambda p: p.medication(
                "alendronate", 250, status="completed", dose_mg=70, route="oral", every=(1, "wk")
            ),
            False,
        ),
        (lambda p: p.administration("zoledronic-acid-4mg", 299, dose_mg=4), False),
        (
            lambda p: p.medication(
                "alendronate", 350, status="completed", dose_mg=70, route="oral", every=(1, "wk")
            ),
            True,
        ),
        (lambda p: p.administration("zoledronic-acid-4mg", 301, dose_mg=4), True),
        (
            lambda p: p.medication(
                "alendronate", 700, status="active", dose_mg=70, route="oral", every=(1, "wk")
            ),
            False,
        ),
    ],
    ids=[
        "alendronate-after",
        "za-day-after",
        "alendronate-before",
        "za-day-before",
        "alendronate-still-active",
    ],
)
def test_a_bisphosphonate_after_the_last_denosumab_is_the_follow_on(view, bisphosphonate, stopped):
    p = bisphosphonate(premenopausal().administration("denosumab-60mg", 300, dose_mg=60))
    only(view(p), *([DENOSUMAB] if stopped else []))


def test_denosumab_stopped_replaces_the_adjuvant_and_bone_loss_cards(view):
    p = (
        early(new_patient("pv", age=64))
        .t_score(100, -2.5)
        .administration("denosumab-60mg", 300, dose_mg=60)
    )
    only(view(p), DENOSUMAB)


# --- menopausal status and bone loss in early breast cancer ---------------------------------------

MENOPAUSE = {
    "age-60": (60, lambda p: p, ADJUVANT),
    "age-59": (59, lambda p: p, None),
    "coded-postmenopausal": (50, lambda p: p.condition("postmenopausal"), ADJUVANT),
    "status-observation": (50, lambda p: p.menopausal_status(30, "postmenopausal"), ADJUVANT),
    "oophorectomy": (45, lambda p: p.procedure("bilateral-oophorectomy", 400), ADJUVANT),
    "goserelin-active": (
        42,
        lambda p: p.condition("premenopausal").medication("goserelin", 60, status="active"),
        ADJUVANT,
    ),
    "goserelin-stopped": (
        42,
        lambda p: p.condition("premenopausal").medication("goserelin", 60, status="stopped"),
        None,
    ),
    "premenopausal": (50, lambda p: p.condition("premenopausal"), None),
    "unknown": (50, lambda p: p, None),
}


@pytest.mark.parametrize("case", list(MENOPAUSE))
@pytest.mark.parametrize("t_score, bone_loss", [(-2.5, True), (-2.0, False)])
def test_adjuvant_card_needs_postmenopausal_and_bone_loss_card_covers_the_rest(
    view, case, t_score, bone_loss
):
    age, status, adjuvant = MENOPAUSE[case]
    p = status(recent(new_patient("pv", age=age))).t_score(100, t_score)
    expected = adjuvant or (BONE_LOSS if bone_loss else None)
    card = only(view(p), *filter(None, [expected])).get(ADJUVANT)
    assert card is None or ("Bone-loss indication as well" in card["detail"]) == bone_loss


@pytest.mark.parametrize(
    "menopause, expected", [("premenopausal", BONE_LOSS), ("postmenopausal", BONE_LOSS)]
)
def test_bone_loss_outside_bone_with_distant_metastases(view, menopause, expected):
    p = (
        early(new_patient("pv", age=50))
        .condition("liver-metastasis")
        .condition(menopause)
        .t_score(100, -2.5)
    )
    only(view(p), expected)
    only(view(early(new_patient("pv", age=50)).condition("liver-metastasis").condition(menopause)))


# --- setting --------------------------------------------------------------------------------------

SETTINGS = {
    "no-breast-cancer": (
        lambda: new_patient("pv", age=64).t_score(100, -3.0).administration("denosumab-60mg", 300),
        [],
    ),
    "bone-metastases-only-coded": (lambda: new_patient("pv").condition("bone-metastasis"), []),
    "breast-cancer-in-remission-with-denosumab-stopped": (
        lambda: (
            new_patient("pv", age=50)
            .condition("breast-cancer", status="remission")
            .administration("denosumab-60mg", 300)
        ),
        [DENOSUMAB],
    ),
    "bone-metastases-with-hypercalcemia": (
        lambda: metastatic(new_patient("pv")).condition("hypercalcemia"),
        [METASTASES],
    ),
    "bone-metastases-relapse-of-old-breast-cancer": (
        lambda: (
            new_patient("pv")
            .condition("breast-cancer", status="resolved")
            .condition("bone-metastasis")
        ),
        [METASTASES],
    ),
    "bone-metastases-after-denosumab": (
        lambda: BASES[METASTASES]().administration("denosumab-120mg", 300),
        [METASTASES],
    ),
    "bone-metastases-resolved": (
        lambda: recent(new_patient("pv", age=64)).condition("bone-metastasis", status="resolved"),
        [ADJUVANT],
    ),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_setting_decides_which_review_applies(view, case):
    build, expected = SETTINGS[case]
    found = only(view(build()), *expected)
    if case == "bone-metastases-after-denosumab":
        assert "Last denosumab dose on" in found[METASTASES]["detail"]


def test_cautions_name_onj_and_allergies_on_record(view):
    p = BASES[METASTASES]().condition("onj").allergy("zoledronic-acid-4mg")
    detail = only(view(p), METASTASES)[METASTASES]["detail"]
    assert (
        "Caution: Osteonecrosis due to drugs, jaw" in detail
        and "Caution: allergy on record to zoledronic acid" in detail
    )
    assert "Caution" not in only(view(BASES[METASTASES]()), METASTASES)[METASTASES]["detail"]


# --- incomplete record ----------------------------------------------------------------------------

ALL_KEYS = [
    "patient",
    "weight",
    "medications",
    "administrations",
    "conditions",
    "allergies",
    "boneDensity",
    "menopauseStatus",
    "oophorectomy",
    "dialysisProcedures",
    "cancerStage",
]


# prefetch key left out (no FHIR server to read it from) -> what the incomplete-record card calls it
MISSING_NAMES = {
    "medications": "Medication orders",
    "administrations": "Medication administrations",
    "conditions": "Problem list",
    "allergies": "Allergies",
    "boneDensity": "Bone density",
    "menopauseStatus": "Menopausal status",
    "oophorectomy": "Oophorectomy",
    "weight": "Body weight",
}


@pytest.mark.parametrize(
    "missing, base, expected",
    [
        ("medications", METASTASES, [INCOMPLETE]),
        ("administrations", ADJUVANT, [INCOMPLETE]),
        ("medications", DENOSUMAB, [INCOMPLETE]),
        ("conditions", METASTASES, [INCOMPLETE]),
        ("allergies", METASTASES, [METASTASES, INCOMPLETE]),
        ("boneDensity", ADJUVANT, [ADJUVANT, INCOMPLETE]),
        ("menopauseStatus", BONE_LOSS, [BONE_LOSS, INCOMPLETE]),
        ("oophorectomy", METASTASES, [METASTASES, INCOMPLETE]),
        ("weight", ADJUVANT, [ADJUVANT, INCOMPLETE]),
    ],
)
def test_unreadable_parts_are_named_and_treatment_is_not_suggested_without_the_medications(
    view, missing, base, expected
):
    found = only(
        view(BASES[base](), prefetch_keys=[k for k in ALL_KEYS if k != missing]), *expected
    )
    card = found[INCOMPLETE]
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "not prefetched" in card["detail"]
    assert [name for name in MISSING_NAMES.values() if name in card["detail"]] == [
        MISSING_NAMES[missing]
    ]


def test_no_breast_cancer_on_record_gets_no_incomplete_card(view):
    assert view(new_patient("pv"), prefetch_keys=[k for k in ALL_KEYS if k != "medications"]) == []


# --- protocol -------------------------------------------------------------------------------------


def test_discovery_lists_the_three_services_with_their_prefetch(frozen_order_sign_app):
    client = frozen_order_sign_app.test_client()
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert {k: s["hook"] for k, s in services.items()} == {
        "bonecds-order-sign": "order-sign",
        ORDER_SELECT: "order-select",
        PATIENT_VIEW: "patient-view",
    }
    for service_id, entry in services.items():
        assert service_id in frozen_order_sign_app.extensions["bonecds"].services
        assert entry["prefetch"] == {
            k.key: k.template for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys
        }
    # the review reads what signing reads: its draft orders pass the same safety rules (renal,
    # calcium, pregnancy...)
    assert services[PATIENT_VIEW]["prefetch"] == services["bonecds-order-sign"]["prefetch"]
    assert set(ALL_KEYS) < set(services[PATIENT_VIEW]["prefetch"])
    assert services[ORDER_SELECT]["prefetch"] == services["bonecds-order-sign"]["prefetch"]
    assert all(
        "{{context.patientId}}" in t and "draftOrders" not in t
        for t in services[PATIENT_VIEW]["prefetch"].values()
    )


@pytest.mark.parametrize(
    "user, status, requester",
    [
        ("Patient/{patient}", 200, None),
        ("RelatedPerson/rp-1", 200, None),
        ("PractitionerRole/role-1", 200, "PractitionerRole/role-1"),
        ("Device/d-1", 400, None),
    ],
)
def test_patient_view_user_kinds(frozen_order_sign_app, user, status, requester):
    p = BASES[METASTASES]()
    body = request_body(
        frozen_order_sign_app, PATIENT_VIEW, p, user_id=user.format(patient=p.patient_id)
    )
    response = frozen_order_sign_app.test_client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 200:
        check_regimen_suggestions(
            only(response.get_json()["cards"], METASTASES)[METASTASES],
            p,
            CARDS[METASTASES][1],
            requester=requester,
        )
    else:
        assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "service_id, rule", [(PATIENT_VIEW, METASTASES), (ORDER_SELECT, "supplements-missing")]
)
def test_feedback_on_the_new_services_is_tied_to_the_rule(frozen_order_sign_app, service_id, rule):
    client, app = frozen_order_sign_app.test_client(), frozen_order_sign_app
    p = BASES[METASTASES]()
    body = request_body(app, service_id, p, *([order(p)] if service_id == ORDER_SELECT else []))
    card = rules(client.post(f"/cds-services/{service_id}", json=body).get_json()["cards"])[rule]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-10-15T10:05:31Z",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            }
        ]
    }
    for expected in (
        {"stored": 1, "duplicates": 0, "unknownCards": 0},
        {"stored": 0, "duplicates": 1, "unknownCards": 0},
    ):
        response = client.post(f"/cds-services/{service_id}/feedback", json=feedback)
        assert response.status_code == 200 and response.get_json() == expected
    rows = [
        r for r in app.extensions["bonecds"].store.feedback_rows() if r["card_uuid"] == card["uuid"]
    ]
    assert [(r["service_id"], r["rule_id"]) for r in rows] == [(service_id, rule)]


def test_feedback_sent_to_another_service_is_an_unknown_card(frozen_order_sign_app):
    """A card uuid is known only to the service that issued it."""
    client, app = frozen_order_sign_app.test_client(), frozen_order_sign_app
    p = BASES[METASTASES]()
    body = request_body(app, PATIENT_VIEW, p)
    card = client.post(f"/cds-services/{PATIENT_VIEW}", json=body).get_json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-10-15T10:05:31Z",
            }
        ]
    }
    response = client.post("/cds-services/bonecds-order-sign/feedback", json=feedback)
    assert response.get_json() == {"stored": 1, "duplicates": 0, "unknownCards": 1}


@pytest.mark.parametrize(
    "allergy, offered",
    [
        (dict(key="zoledronic-acid-4mg"), ["1046398"]),  # zoledronic acid left out, denosumab stays
        (
            dict(text="Bisphosphonates"),
            ["1046398"],
        ),  # the class allergy leaves out zoledronic acid too
        (dict(key="denosumab-120mg"), ["1865665"]),  # and a denosumab allergy leaves out denosumab
        (dict(key="letrozole"), ["1865665", "1046398"]),  # an unrelated allergy changes nothing
    ],
    ids=["zoledronic-acid", "bisphosphonate-class", "denosumab", "unrelated"],
)
def test_no_draft_order_for_a_drug_the_patient_is_allergic_to(view, allergy, offered):
    card = only(view(BASES[METASTASES]().allergy(**allergy)), METASTASES)[METASTASES]
    codes = [
        a["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
        for s in card["suggestions"]
        for a in s["actions"]
    ]
    assert codes == offered
    assert card["suggestions"][0].get("isRecommended") is True
