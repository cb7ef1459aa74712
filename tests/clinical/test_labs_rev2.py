"""Catalog revision 2, laboratory checks through HTTP with the clock frozen: the denosumab
creatinine windows of renal-data-missing and the Prolia boxed-warning work-up of
denosumab-renal-hypocalcemia (first dose of a course vs later doses), each threshold from both
sides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fixtures.builder import ANCHOR_INSTANT, PatientBuilder, day
from hooks.fhir_validation import validate_fhir_resource
from hooks.knowledge import load_knowledge
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    metastatic,
    new_patient,
    oral_order,
    order,
    prepared,
    rules,
)

CALCIUM, ALBUMIN, PHOSPHATE, PTH, VITAMIN_D, CREATININE = (
    "17861-6",
    "1751-7",
    "2777-1",
    "2731-8",
    "62292-8",
    "2160-0",
)
RULE = "denosumab-renal-hypocalcemia"
KNOWLEDGE = load_knowledge()


def instant(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def service_requests(card: dict) -> list[dict]:
    """What the card's buttons order, each checked against the FHIR model."""
    return [
        validate_fhir_resource(a["resource"])
        for a in actions(card, "create")
        if a["resource"]["resourceType"] == "ServiceRequest"
    ]


def codes(card: dict) -> list[str]:
    return [r["code"]["coding"][0]["code"] for r in service_requests(card)]


def severe(
    prefix: str, *, creatinine_days: float = 6, calcium: bool = True, earlier: tuple = ()
) -> PatientBuilder:
    """A woman of 70 with bone metastases, 60 kg, creatinine 2.04 mg/dL: CrCl 24.3 mL/min; earlier
    denosumab doses `earlier` days ago."""
    p = metastatic(prepared(new_patient(prefix, age=70), calcium=calcium, renal=False))
    p.creatinine(creatinine_days, 2.04).weight(6, 60)
    for days in earlier:
        p.administration("denosumab-120mg", days, dose_mg=120)
    return p


# denosumab-renal-hypocalcemia: the first dose of a course gets the work-up and weekly calcium


def test_first_dose_orders_the_work_up_and_weekly_calcium(post):
    p = severe("dmab-first")  # calcium 5 days old with albumin: not ordered again
    card = rules(post(p, denosumab_order(p)))[RULE]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Denosumab with CrCl 24.3 mL/min: high risk of hypocalcemia")
    assert "work-up before the first dose" in card["summary"]
    assert codes(card) == [PHOSPHATE, PTH, VITAMIN_D, CALCIUM]
    assert [s["label"] for s in card["suggestions"]] == [
        "Order phosphate",
        "Order intact PTH",
        "Order 25-OH vitamin D",
        f"Order serum calcium weekly x 4 from {ANCHOR_INSTANT.date().isoformat()}",
    ]
    *single, weekly = service_requests(card)
    assert all("occurrenceTiming" not in r for r in single)
    assert weekly["occurrenceTiming"]["repeat"] == {
        "boundsPeriod": {"start": instant(ANCHOR_INSTANT)},
        "frequency": 1,
        "period": 1,
        "periodUnit": "wk",
        "count": 4,
    }
    assert all(r["subject"]["reference"] == f"Patient/{p.patient_id}" for r in single + [weekly])
    detail = card["detail"]
    assert "CrCl 24.3 mL/min" in detail and "below 30 mL/min" in detail
    assert "Within 30 days: calcium with albumin: 9.4 mg/dL on" in detail
    assert "No result within 30 days: phosphate, intact PTH, 25-OH vitamin D" in detail
    assert "then calcium monthly" in detail


def test_first_dose_without_calcium_orders_calcium_with_albumin(post):
    p = severe("dmab-first-noca", calcium=False)
    card = rules(post(p, denosumab_order(p)))[RULE]
    assert codes(card) == [CALCIUM, ALBUMIN, PHOSPHATE, PTH, VITAMIN_D, CALCIUM]


def lab(code: str, display: str, value: float, unit: str):
    return code, lambda p, days: p.lab(code, display, days, value, unit)


PHOSPHATE_NAME = "Phosphate [Mass/volume] in Serum or Plasma"
PTH_NAME = "Parathyrin.intact [Mass/volume] in Serum or Plasma"
WORK_UP = {  # what is recorded, and the code it makes unnecessary to order
    "phosphate": lab(PHOSPHATE, PHOSPHATE_NAME, 3.4, "mg/dL"),
    "phosphate-mmol": lab(PHOSPHATE, PHOSPHATE_NAME, 1.1, "mmol/L"),
    "pth": lab(PTH, PTH_NAME, 88, "pg/mL"),
    "pth-pmol": lab(PTH, PTH_NAME, 9.3, "pmol/L"),
    "vitamin-d": (VITAMIN_D, lambda p, days: p.observation("vitamin-d-total", days, 32, "ng/mL")),
}


@pytest.mark.parametrize("days, ordered", [(30, False), (31, True)], ids=["30d", "31d"])
@pytest.mark.parametrize("test", list(WORK_UP))
def test_work_up_result_window(post, test, days, ordered):
    p = severe(f"dmab-window-{test}")
    code, record = WORK_UP[test]
    record(p, days)
    card = rules(post(p, denosumab_order(p)))[RULE]
    assert (code in codes(card)) is ordered, codes(card)
    if not ordered:
        assert f"on {day(30)[:10]}." in card["detail"]


def test_weekly_calcium_starts_on_the_planned_dose_date(post):
    p = severe("dmab-start")
    draft = denosumab_order(p)
    start = ANCHOR_INSTANT + timedelta(days=3)
    draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": instant(start)}
    card = rules(post(p, draft))[RULE]
    weekly = service_requests(card)[-1]
    assert weekly["occurrenceTiming"]["repeat"]["boundsPeriod"]["start"] == instant(start)
    assert card["suggestions"][-1]["label"] == (
        f"Order serum calcium weekly x 4 from {start.date().isoformat()}"
    )


@pytest.mark.parametrize(
    "earlier, first",
    [((), True), ((28,), False), ((84, 56, 28), False), ((400,), False), ((401,), True)],
    ids=["no-dose", "second-dose", "fourth-dose", "last-dose-400d", "last-dose-401d-new-course"],
)
def test_later_doses_say_calcium_monthly_and_order_nothing(post, earlier, first):
    p = severe(f"dmab-course-{len(earlier)}", earlier=earlier)
    card = rules(post(p, denosumab_order(p)))[RULE]
    assert card["indicator"] == "warning" and "CrCl 24.3 mL/min" in card["summary"]
    if first:
        assert codes(card)[-1] == CALCIUM and "First dose of a course" in card["detail"]
        return
    assert card.get("suggestions", []) == []
    assert card["summary"].endswith("check calcium monthly")
    last = day(min(earlier))[:10]
    assert (
        f"Later dose of the course (last denosumab dose {last}): check calcium monthly"
        in (card["detail"])
    )


def male_68(prefix: str, weight: float | None, creatinine: float = 2.0) -> PatientBuilder:
    """A man of 68: CrCl = weight / creatinine (Cockcroft-Gault)."""
    p = metastatic(prepared(new_patient(prefix, sex="male", age=68), renal=False))
    p.creatinine(6, creatinine)
    if weight is not None:
        p.weight(6, weight)
    return p


@pytest.mark.parametrize(
    "record, summary",
    [
        (lambda: male_68("dmab-crcl-299", 59.9), "Denosumab with CrCl 29.95 mL/min"),
        (lambda: male_68("dmab-crcl-30", 60), None),
        (
            lambda: male_68("dmab-egfr-22", None).egfr(6, 22),
            "Denosumab with eGFR 22 mL/min/1.73 m² (not CrCl)",
        ),
        (lambda: male_68("dmab-egfr-30", None).egfr(6, 30), None),
        (lambda: male_68("dmab-dialysis", 70).condition("dialysis"), "Denosumab on dialysis"),
    ],
    ids=["crcl-29.95", "crcl-30.0", "egfr-22", "egfr-30", "dialysis"],
)
def test_summary_names_the_deciding_value(post, record, summary):
    p = record()
    card = rules(post(p, denosumab_order(p))).get(RULE)
    assert (card is None) is (summary is None)
    if summary:
        assert card["summary"].startswith(f"{summary}: high risk of hypocalcemia"), card["summary"]


def test_work_up_knowledge_is_sourced_and_its_codes_verified():
    workup = KNOWLEDGE.raw["thresholds"]["denosumab_ckd_mbd_workup"]
    assert workup["source"] == "prolia-label" and "to be verified" in workup["note"]
    orderables = KNOWLEDGE.raw["orderables"]
    for key, code in (
        ("serum-phosphate", PHOSPHATE),
        ("intact-pth", PTH),
        ("vitamin-d-25oh", VITAMIN_D),
    ):
        assert orderables[key]["loinc"] == code and orderables[key]["status"] == "V"
    for kind, code in (("phosphate", PHOSPHATE), ("pth", PTH)):
        entry = KNOWLEDGE.raw["observations"][kind]
        assert entry["loinc"] == [code] and entry["status"] == "V" and entry["evidence"]


# renal-data-missing: the creatinine window by agent


def window_case(kind: str, creatinine_days: float) -> tuple[PatientBuilder, dict]:
    p = metastatic(prepared(new_patient(f"cr-window-{kind}"), renal=False))
    p.creatinine(creatinine_days, 0.8).weight(5, 70)
    make = {"za": order, "denosumab": denosumab_order, "alendronate": oral_order}[kind]
    return p, make(p)


@pytest.mark.parametrize(
    "kind, days, fires",
    [
        ("za", 30, False),
        ("za", 31, True),
        ("denosumab", 170, False),
        ("denosumab", 180, False),
        ("denosumab", 181, True),
        ("denosumab", 185, True),
        ("alendronate", 365, False),
        ("alendronate", 366, True),
    ],
)
def test_creatinine_window_by_agent(post, kind, days, fires):
    p, draft = window_case(kind, days)
    card = rules(post(p, draft)).get("renal-data-missing")
    assert (card is not None) is fires
    if fires:
        window = {"za": 30, "denosumab": 180, "alendronate": 365}[kind]
        assert f"No serum creatinine within the last {window} days" in card["detail"]
        assert codes(card) == [CREATININE]


@pytest.mark.parametrize(
    "creatinine_days, fires", [(30, False), (31, True), (40, True)], ids=["30d", "31d", "40d"]
)
def test_denosumab_severe_impairment_needs_a_creatinine_within_30_days(
    post, creatinine_days, fires
):
    p = severe(f"dmab-severe-{creatinine_days}", creatinine_days=creatinine_days, earlier=(28,))
    found = rules(post(p, denosumab_order(p)))
    assert RULE in found  # CrCl 24.3 from the older creatinine still counts for the calcium card
    card = found.get("renal-data-missing")
    assert (card is not None) is fires
    if fires:
        assert card["indicator"] == "warning"
        assert card["summary"] == "Renal function out of date before denosumab: order creatinine"
        assert (
            f"is {creatinine_days} days old: with CrCl 24.3 mL/min (below 30 mL/min), denosumab"
            " needs a creatinine within the last 30 days" in card["detail"]
        )
        assert codes(card) == [CREATININE]


@pytest.mark.parametrize("creatinine_days, fires", [(30, False), (31, True)], ids=["30d", "31d"])
def test_denosumab_on_dialysis_needs_a_creatinine_within_30_days(post, creatinine_days, fires):
    p = metastatic(prepared(new_patient("dmab-dialysis-cr"), renal=False)).condition("dialysis")
    p.creatinine(creatinine_days, 6.1).weight(5, 70)
    card = rules(post(p, denosumab_order(p))).get("renal-data-missing")
    assert (card is not None) is fires
    if fires:
        assert "on dialysis, denosumab needs a creatinine within the last 30 days" in card["detail"]


def test_normal_function_from_an_older_creatinine_is_quiet_for_denosumab(post):
    p, draft = window_case("denosumab", 170)
    assert rules(post(p, draft)) == {}


def test_work_up_counts_nothing_from_results_that_could_not_be_retrieved(
    post, frozen_order_sign_app
):
    """Unknown is not recent: with the calcium results (and the phosphate and PTH fetched with
    them) not retrieved, every test of that group is ordered and the card says what was missing."""
    keys = [k.key for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys]
    p = severe("dmab-no-calcium-group")
    WORK_UP["phosphate"][1](p, 5)
    card = rules(post(p, denosumab_order(p), prefetch_keys=[k for k in keys if k != "calcium"]))[
        RULE
    ]
    assert codes(card) == [CALCIUM, ALBUMIN, PHOSPHATE, PTH, VITAMIN_D, CALCIUM]
    assert "Calcium results could not be retrieved" in card["detail"]
