"""Catalog revision 2 regimen rules through the whole HTTP path, on both sides of every threshold:
denosumab strength and schedule, the late follow-on after denosumab 60 mg, the minimum intervals
added in revision 2, adjuvant duration with a bone-loss indication, and a continued standing order.

Every test starts from a prepared patient who gets no card and changes one thing (the frozen clock
stands at the fixtures' anchor, 2026-10-15).
"""

from __future__ import annotations

from datetime import date

import pytest

from fixtures.builder import FIXTURE_ANCHOR_DATE, PatientBuilder
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    early,
    metastatic,
    new_patient,
    oral_order,
    order,
    prepared,
    rules,
)

DMAB_60_RXNORM = "993452"
DMAB_120_RXNORM = "1046398"
STRENGTH = "denosumab-strength-schedule"
FOLLOW_ON = "denosumab-follow-on-late"


def hypercalcemia(p: PatientBuilder) -> PatientBuilder:
    """Current hypercalcemia of malignancy: diagnosed 3 days ago, corrected calcium 12.6 mg/dL."""
    return metastatic(p).condition("hypercalcemia", onset_days_ago=3).corrected_calcium(1, 12.6)


def metastatic_other(p: PatientBuilder) -> PatientBuilder:
    return p.condition("breast-cancer").condition("liver-metastasis")


SETTINGS = {
    "early": early,
    "metastatic": metastatic,
    "metastatic-other": metastatic_other,
    "hypercalcemia": hypercalcemia,
}


def patient(setting: str, **extra) -> PatientBuilder:
    return prepared(SETTINGS[setting](new_patient("rev2", **extra)))


def only(found: dict[str, dict], *expected: str) -> None:
    assert set(found) == set(expected), sorted(found)


def days_ago(day: date) -> int:
    return (FIXTURE_ANCHOR_DATE - day).days


def ordered(card: dict) -> list[tuple[str, float, tuple]]:
    """(RxNorm code, dose, (period, unit)) of each order the card's buttons would write."""
    out = []
    for action in actions(card, "update"):
        resource = action["resource"]
        dosage = resource["dosageInstruction"][0]
        repeat = dosage["timing"]["repeat"]
        out.append(
            (
                resource["medicationCodeableConcept"]["coding"][0]["code"],
                dosage["doseAndRate"][0]["doseQuantity"]["value"],
                (repeat["period"], repeat["periodUnit"]),
            )
        )
    return out


# --- denosumab-strength-schedule -----------------------------------------------------------------

Q4W_120 = (DMAB_120_RXNORM, 120, (4, "wk"))
Q6M_60 = (DMAB_60_RXNORM, 60, (6, "mo"))


@pytest.mark.parametrize(
    "setting, strength, every, also, offered",
    [
        ("metastatic", 120, (4, "wk"), (), None),
        ("metastatic", 120, (5, "wk"), (), None),
        ("metastatic", 120, (36, "d"), (), Q4W_120),
        ("metastatic", 120, (12, "wk"), (), Q4W_120),
        ("metastatic", 120, (6, "mo"), (), Q4W_120),
        ("metastatic-other", 120, (12, "wk"), (), Q4W_120),
        ("hypercalcemia", 120, (12, "wk"), (), None),
        ("hypercalcemia", 60, (3, "mo"), (), Q4W_120),
        ("early", 120, (8, "wk"), (), Q6M_60),
        ("early", 120, (5, "wk"), ("adjuvant-denosumab-not-recommended",), None),
        ("early", 60, (6, "mo"), (), None),
        ("early", 60, (25, "wk"), (), None),
        ("early", 60, (24, "wk"), (), Q6M_60),
        ("early", 60, (3, "mo"), (), Q6M_60),
        ("metastatic", 60, (3, "mo"), (), Q4W_120),
        ("metastatic", 60, (6, "mo"), ("metastatic-schedule-inappropriate",), None),
    ],
    ids=[
        "bone-mets-120-4wk",
        "bone-mets-120-5wk",
        "bone-mets-120-36d",
        "bone-mets-120-12wk",
        "bone-mets-120-6mo",
        "metastatic-other-120-12wk",
        "hypercalcemia-120-12wk",
        "hypercalcemia-60-3mo",
        "early-120-8wk",
        "early-120-5wk-is-the-adjuvant-card",
        "early-60-6mo",
        "early-60-25wk-within-grace",
        "early-60-24wk",
        "early-60-3mo",
        "bone-mets-60-3mo",
        "bone-mets-60-6mo-is-the-metastatic-card",
    ],
)
def test_denosumab_strength_fits_interval(post, setting, strength, every, also, offered):
    """120 mg beyond 5 weeks outside hypercalcemia, 60 mg more often than every 6 months less 2
    weeks; the button writes the regimen of the setting, and the interval and metastatic-schedule
    cards leave the order to it."""
    p = patient(setting)
    draft = denosumab_order(p, strength, every=every)
    found = rules(post(p, draft))
    only(found, *also, *([STRENGTH] if offered else []))
    if not offered:
        return
    card = found[STRENGTH]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith(f"Denosumab {strength} mg every")
    assert "does not fit its strength" in card["summary"]
    assert ordered(card) == [offered]
    (update,) = actions(card, "update")
    assert update["resource"]["id"] == draft["id"]
    labelled = "every 4 weeks" if strength == 120 else "every 6 months"
    assert f"the {strength} mg strength is given {labelled}" in card["detail"]
    # the AGO +/- option of 120 mg every 12 weeks is named in bone metastases only (an override)
    assert ("AGO +/-" in card["detail"]) is (setting == "metastatic" and strength == 120)
    reasons = [r["code"] for r in card["overrideReasons"]]
    assert "guideline-alternative-schedule" in reasons


def test_denosumab_strength_without_interval_is_not_judged(post):
    p = patient("metastatic")
    found = rules(post(p, denosumab_order(p, 60, every=None)))
    assert STRENGTH not in found and "interval-too-short" not in found, sorted(found)


def test_denosumab_strength_and_a_recent_dose(post):
    """60 mg every 3 months with the last dose 30 days ago: the strength card judges the interval,
    the interval card only the time since the last dose."""
    p = patient("early")
    p.administration("denosumab-60mg", 30, dose_mg=60)
    found = rules(post(p, denosumab_order(p, 60, every=(3, "mo"))))
    only(found, STRENGTH, "interval-too-short")
    detail = found["interval-too-short"]["detail"]
    assert "was 30 days ago" in detail and "The order repeats" not in detail


def test_denosumab_strength_suggestion_passes_the_gate(post):
    """Principle 7: with a history of osteonecrosis of the jaw no denosumab regimen is offered, and
    the detail says why."""
    p = patient("metastatic").condition("onj")
    found = rules(post(p, denosumab_order(p, 120, every=(12, "wk"))))
    card = found[STRENGTH]
    assert actions(card, "update") == []
    assert "Not offered" in card["detail"] and "none is offered" in card["detail"]


# --- denosumab-follow-on-late --------------------------------------------------------------------

SEVEN_MONTHS = date(2026, 3, 15)
TWENTY_FOUR_MONTHS = date(2024, 10, 15)


@pytest.mark.parametrize(
    "last_dose, fires",
    [
        (210, False),
        (days_ago(SEVEN_MONTHS), False),
        (days_ago(SEVEN_MONTHS) + 1, True),
        (228, True),
        (days_ago(TWENTY_FOUR_MONTHS), True),
        (days_ago(TWENTY_FOUR_MONTHS) + 1, False),
        (761, False),
    ],
    ids=[
        "6.9-months",
        "exactly-7-months",
        "7-months-and-a-day",
        "7.5-months",
        "exactly-24-months",
        "24-months-and-a-day",
        "25-months",
    ],
)
def test_follow_on_window(post, last_dose, fires):
    p = patient("early")
    p.administration("denosumab-60mg", last_dose + 183, dose_mg=60)
    p.administration("denosumab-60mg", last_dose, dose_mg=60)
    found = rules(post(p, oral_order(p)))
    only(found, *([FOLLOW_ON] if fires else []))
    if fires:
        card = found[FOLLOW_ON]
        assert card["indicator"] == "info" and "suggestions" not in card
        assert f"stopped {last_dose} days ago" in card["summary"]
        assert "start this bisphosphonate now" in card["summary"]
        assert "7.1 per 100 patient-years" in card["detail"]


@pytest.mark.parametrize(
    "history, fires",
    [
        (lambda p: p.administration("denosumab-120mg", 228, dose_mg=120), False),
        (lambda p: p.medication("denosumab-60mg", 228), True),
        (
            lambda p: p.administration("denosumab-60mg", 228, dose_mg=60).medication(
                "alendronate", 100
            ),
            False,
        ),
        (
            lambda p: p.medication("alendronate", 300).administration(
                "denosumab-60mg", 228, dose_mg=60
            ),
            True,
        ),
    ],
    ids=[
        "last-dose-120mg",
        "completed-60mg-order",
        "bisphosphonate-since",
        "bisphosphonate-before-denosumab",
    ],
)
def test_follow_on_reads_the_last_dose(post, history, fires):
    p = patient("early")
    history(p)
    found = rules(post(p, order(p, every=(6, "mo"))))
    assert (FOLLOW_ON in found) is fires, sorted(found)


# --- minimum intervals added in revision 2 -------------------------------------------------------


@pytest.mark.parametrize("dose", [6, 4, 2], ids=["6mg", "renal-4mg", "renal-2mg"])
@pytest.mark.parametrize("setting", ["metastatic", "metastatic-other"])
@pytest.mark.parametrize("days, fires", [(20, True), (21, False)], ids=["20-days", "21-days"])
def test_ibandronate_iv_oncology_minimum(post, setting, dose, days, fires):
    """Ibandronate 6 mg IV and its renal doses: not more often than every 3 weeks in metastatic
    settings, by the order's interval and by the last dose."""
    p = patient(setting)
    draft = order(p, "ibandronate", dose_mg=dose, every=(days, "d"), infusion_minutes=60)
    found = rules(post(p, draft))
    assert ("interval-too-short" in found) is fires, sorted(found)
    p = patient(setting)
    p.administration("ibandronate", days, dose_mg=dose)
    found = rules(post(p, order(p, "ibandronate", dose_mg=dose, every=(4, "wk"))))
    assert ("interval-too-short" in found) is fires, sorted(found)


@pytest.mark.parametrize("days, fires", [(20, True), (21, False)], ids=["20-days", "21-days"])
def test_metastatic_other_takes_the_bone_metastatic_minimum(post, days, fires):
    p = patient("metastatic-other")
    p.medication("zoledronic-acid-4mg", days)
    found = rules(post(p, order(p, every=(12, "wk"))))
    only(found, *(["interval-too-short"] if fires else []))


# --- adjuvant-duration-exceeded with a bone-loss indication --------------------------------------

FIVE_YEARS_DAYS = days_ago(FIXTURE_ANCHOR_DATE.replace(year=FIXTURE_ANCHOR_DATE.year - 5))


@pytest.mark.parametrize(
    "first, bone_loss, indicator",
    [
        (1790, False, None),
        (1790, True, None),
        (FIVE_YEARS_DAYS, True, None),
        (FIVE_YEARS_DAYS + 1, True, "info"),
        (FIVE_YEARS_DAYS + 1, False, "warning"),
    ],
    ids=[
        "4.9-years",
        "4.9-years-bone-loss",
        "5-years-bone-loss",
        "5-years-and-a-day-bone-loss",
        "5-years-and-a-day-adjuvant",
    ],
)
def test_adjuvant_duration_with_bone_loss(post, first, bone_loss, indicator):
    p = patient("early")
    if bone_loss:
        p.t_score(100, -2.6)
    for days in range(first, 150, -180):
        p.medication("zoledronic-acid-4mg", days)
    draft = order(p, every=(6, "mo"))
    found = rules(post(p, draft))
    only(found, *(["adjuvant-duration-exceeded"] if indicator else []))
    if indicator is None:
        return
    card = found["adjuvant-duration-exceeded"]
    assert card["indicator"] == indicator
    if indicator == "info":
        assert "reassess the need for treatment" in card["summary"]
        assert "3-5 years" in card["summary"] and "suggestions" not in card
        assert "T-score -2.6" in card["detail"]
    else:
        assert [a["resourceId"] for a in actions(card, "delete")] == [
            f"MedicationRequest/{draft['id']}"
        ]


# --- duplicate-bone-agent: a continued standing order --------------------------------------------


def standing(
    p: PatientBuilder,
    last_dose: int,
    every: tuple[float, str],
    *,
    dose: float = 4,
    status: str = "active",
) -> PatientBuilder:
    p.medication(
        "zoledronic-acid-4mg", 500, status=status, dose_mg=dose, route="intravenous", every=every
    )
    return p.administration("zoledronic-acid-4mg", last_dose, dose_mg=dose)


@pytest.mark.parametrize(
    "setting, every, last_dose, changes, indicator",
    [
        ("metastatic", (12, "wk"), 84, {}, "warning"),
        ("metastatic", (12, "wk"), 83, {}, "critical"),
        ("early", (6, "mo"), 169, {}, "warning"),
        ("early", (6, "mo"), 168, {}, "critical"),
        ("metastatic", (12, "wk"), 84, {"dose": 3.5}, "critical"),
        ("metastatic", (12, "wk"), 84, {"status": "on-hold"}, "critical"),
    ],
    ids=[
        "12-weekly-met",
        "12-weekly-a-day-short",
        "6-monthly-within-grace",
        "6-monthly-before-grace",
        "other-dose",
        "on-hold",
    ],
)
def test_continued_standing_order(post, setting, every, last_dose, changes, indicator):
    p = standing(patient(setting), last_dose, every, **changes)
    draft = order(p, every=every)
    found = rules(post(p, draft))
    card = found["duplicate-bone-agent"]
    assert card["indicator"] == indicator
    assert ("already active: renew or discontinue the old order" in card["summary"]) is (
        indicator == "warning"
    )
    assert [a["resourceId"] for a in actions(card, "delete")] == [
        f"MedicationRequest/{draft['id']}"
    ]
    if indicator == "warning":
        only(found, "duplicate-bone-agent")
        assert f"{last_dose} days before this dose" in card["detail"]
