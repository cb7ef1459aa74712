"""Catalog revision 2 renal tables through HTTP: ibandronate 6 mg IV and 50 mg oral (Bondronat),
clodronate oral and IV, pamidronate's floor by setting, the product an ibandronate order is, and
one-click orders at the band (principle 7). Both sides of every threshold."""

from __future__ import annotations

import itertools

import pytest

from fixtures.builder import ATC, PatientBuilder, medication_request
from tests.support.order_sign_http import actions, rules

_ids = itertools.count(1)


def patient(crcl: float | None, *, setting: str = "bone-metastatic") -> PatientBuilder:
    """A man of 68 with creatinine 1.0 mg/dL, so Cockcroft-Gault gives exactly his weight in kg
    ((140 - 68) x weight / 72), prepared in every other respect."""
    p = PatientBuilder(f"rt2-t{next(_ids)}-pt", sex="male", age=68)
    p.medication("calcium-vitamin-d", 30, status="active").calcium(5, 9.4, albumin=4.1)
    p.dental_exam(60)
    if setting in ("bone-metastatic", "early", "hypercalcemia"):
        p.condition("breast-cancer")
    if setting in ("bone-metastatic", "hypercalcemia"):
        p.condition("bone-metastasis")
    if setting == "hypercalcemia":
        p.condition("hypercalcemia", onset_days_ago=3).corrected_calcium(1, 12.6)
    if crcl is not None:
        p.creatinine(3, 1.0).weight(3, crcl)
    return p


def on_dialysis(setting: str = "bone-metastatic") -> PatientBuilder:
    p = patient(None, setting=setting)
    return p.condition("dialysis").creatinine(3, 6.0).weight(3, 70)


def ibandronate(
    p: PatientBuilder,
    dose: float,
    *,
    route: str = "intravenous",
    every: tuple[float, str] | None = (4, "wk"),
    minutes: float | None = None,
    key: str = "ibandronate",
) -> dict:
    return medication_request(
        f"{p.patient_id}-draft",
        p.patient_id,
        key,
        dose_mg=dose,
        route=route,
        every=every,
        infusion_minutes=minutes,
    )


def clodronate(p: PatientBuilder, dose: float, *, per_day: int = 1, route: str = "oral") -> dict:
    """A clodronate order coded by ATC (no US product), `per_day` times a day."""
    order = medication_request(
        f"{p.patient_id}-draft",
        p.patient_id,
        "ibandronate",
        dose_mg=dose,
        route=route,
        every=(1, "d") if route == "oral" else (3, "wk"),
    )
    order["medicationCodeableConcept"] = {
        "coding": [{"system": ATC, "code": "M05BA02", "display": "clodronic acid"}],
        "text": "clodronic acid",
    }
    order["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = per_day
    return order


def pamidronate(p: PatientBuilder) -> dict:
    return medication_request(
        f"{p.patient_id}-draft",
        p.patient_id,
        "pamidronate-90mg",
        dose_mg=90,
        route="intravenous",
        every=(4, "wk"),
        infusion_minutes=120,
    )


def ordered(card: dict) -> dict:
    """The one update the card offers, as its resource's dose, interval and infusion time."""
    (action,) = actions(card, "update")
    dosage = action["resource"]["dosageInstruction"][0]
    repeat = dosage.get("timing", {}).get("repeat", {})
    return {
        "dose": dosage["doseAndRate"][0]["doseQuantity"]["value"],
        "every": (repeat.get("period"), repeat.get("periodUnit")),
        "frequency": repeat.get("frequency", 1),
        "minutes": repeat.get("duration"),
    }


# 1. Which product an ibandronate order is


@pytest.mark.parametrize(
    "dose, every, setting, oncology",
    [
        (3, (3, "mo"), "bone-metastatic", False),
        (3, None, "bone-metastatic", False),
        (3.01, (3, "mo"), "bone-metastatic", True),
        (2, (4, "wk"), "bone-metastatic", True),
        (2, (89, "d"), "bone-metastatic", True),
        (3, None, "hypercalcemia", True),
    ],
    ids=["3mg-3mo", "3mg-no-interval", "3.01mg", "2mg-4wk", "2mg-89d", "3mg-hypercalcemia"],
)
def test_ibandronate_iv_product_without_a_product_code(post, dose, every, setting, oncology):
    """CrCl 25: the 3 mg product has a floor at 30 (critical); the 6 mg product has none, its lowest
    band gives 2 mg."""
    p = patient(25, setting=setting)
    found = rules(post(p, ibandronate(p, dose, every=every, minutes=60)))
    assert ("renal-contraindicated" in found) is not oncology
    if oncology:
        assert ("renal-dose-adjust" in found) is (dose > 2)
    else:
        assert found["renal-contraindicated"]["indicator"] == "critical"


def test_ibandronate_product_code_decides(post):
    """The 3 mg prefilled syringe ordered every 4 weeks is the 3 mg product, interval or not."""
    p = patient(25)
    found = rules(post(p, ibandronate(p, 3, key="ibandronate-3mg-syringe")))
    assert found["renal-contraindicated"]["indicator"] == "critical"


# 2. Ibandronate 6 mg IV dose bands and infusion time (L31)


@pytest.mark.parametrize(
    "crcl, dose, expected, minutes",
    [
        (50, 6, None, None),
        (49.9, 6, 4, 60),
        (30, 6, 4, 60),
        (30, 4, None, None),
        (29.9, 4, 2, 60),
        (29.9, 2, None, None),
    ],
    ids=["crcl50-6mg", "crcl49.9-6mg", "crcl30-6mg", "crcl30-4mg", "crcl29.9-4mg", "crcl29.9-2mg"],
)
def test_ibandronate_6mg_bands(post, crcl, dose, expected, minutes):
    p = patient(crcl)
    order = ibandronate(p, dose, minutes=60)
    found = rules(post(p, order))
    assert "renal-contraindicated" not in found
    if expected is None:
        assert "renal-dose-adjust" not in found
        return
    card = found["renal-dose-adjust"]
    assert card["indicator"] == "warning"
    assert f"CrCl {crcl:.1f} mL/min" in card["summary"]
    assert f"**{expected:g} mg over at least 60 minutes**" in card["detail"]
    offer = ordered(card)
    assert offer["dose"] == expected and offer["minutes"] == minutes
    assert offer["every"] == (4, "wk")


def test_ibandronate_6mg_on_dialysis_takes_the_lowest_band(post):
    p = on_dialysis()
    found = rules(post(p, ibandronate(p, 6, minutes=15)))
    assert "renal-contraindicated" not in found
    card = found["renal-dose-adjust"]
    assert card["summary"].startswith("Ibandronate dose on dialysis is 2 mg")
    assert "Cockcroft-Gault" not in card["detail"]
    assert ordered(card)["dose"] == 2 and ordered(card)["minutes"] == 60
    fast = found["infusion-too-fast"]
    assert "the minimum is 60 min on dialysis" in fast["summary"]


@pytest.mark.parametrize(
    "crcl, dose, minutes, minimum",
    [(50, 6, 15, None), (50, 6, 14, 15), (49.9, 4, 60, None), (49.9, 4, 59, 60)],
    ids=["crcl50-15min", "crcl50-14min", "crcl49.9-60min", "crcl49.9-59min"],
)
def test_ibandronate_6mg_infusion_time(post, crcl, dose, minutes, minimum):
    p = patient(crcl)
    found = rules(post(p, ibandronate(p, dose, minutes=minutes)))
    assert "renal-dose-adjust" not in found
    assert ("infusion-too-fast" in found) is (minimum is not None)
    if minimum is not None:
        card = found["infusion-too-fast"]
        assert f"the minimum is {minimum} min" in card["summary"]
        assert ordered(card)["minutes"] == minimum and ordered(card)["dose"] == dose


def test_fast_infusion_suggestion_carries_the_band_dose(post):
    """Principle 7: the infusion-time update of a 6 mg order at CrCl 45 orders the band's 4 mg."""
    p = patient(45)
    found = rules(post(p, ibandronate(p, 6, minutes=15)))
    assert ordered(found["infusion-too-fast"]) == {
        "dose": 4,
        "every": (4, "wk"),
        "frequency": 1,
        "minutes": 60,
    }
    assert ordered(found["renal-dose-adjust"])["dose"] == 4


@pytest.mark.parametrize("dose, fires", [(6, False), (6.5, True)], ids=["6mg", "6.5mg"])
def test_ibandronate_6mg_maximum(post, dose, fires):
    p = patient(45 if fires else 80)
    found = rules(post(p, ibandronate(p, dose, minutes=60)))
    assert ("dose-above-maximum" in found) is fires
    if fires:
        # the maximum is 6 mg, but at CrCl 45 a one-click order carries the band's 4 mg
        assert ordered(found["dose-above-maximum"])["dose"] == 4


# 3. Ibandronate 50 mg oral: the band sets the frequency (L32)


@pytest.mark.parametrize(
    "crcl, every, expected",
    [
        (50, (1, "d"), None),
        (49.9, (1, "d"), (2, "d")),
        (30, (2, "d"), None),
        (29.9, (2, "d"), (1, "wk")),
        (29.9, (1, "wk"), None),
    ],
    ids=["crcl50-daily", "crcl49.9-daily", "crcl30-2d", "crcl29.9-2d", "crcl29.9-weekly"],
)
def test_ibandronate_50mg_oral_frequency(post, crcl, every, expected):
    p = patient(crcl, setting="early")
    found = rules(post(p, ibandronate(p, 50, route="oral", every=every)))
    assert "renal-contraindicated" not in found  # no floor for the 50 mg tablet
    if expected is None:
        assert "renal-dose-adjust" not in found
        return
    card = found["renal-dose-adjust"]
    assert card["summary"].startswith("Ibandronate frequency for CrCl")
    offer = ordered(card)
    assert offer["every"] == expected and offer["dose"] == 50
    patient_instruction = actions(card, "update")[0]["resource"]["dosageInstruction"][0]
    assert "overnight fast" in patient_instruction.get("patientInstruction", "")


def test_ibandronate_50mg_on_dialysis_once_weekly(post):
    p = on_dialysis(setting="early")
    found = rules(post(p, ibandronate(p, 50, route="oral", every=(1, "d"))))
    assert "renal-contraindicated" not in found
    assert ordered(found["renal-dose-adjust"])["every"] == (1, "wk")


def test_ibandronate_150mg_monthly_keeps_its_floor(post):
    p = patient(29.9, setting="early")
    found = rules(post(p, ibandronate(p, 150, route="oral", every=(1, "mo"))))
    assert found["renal-contraindicated"]["indicator"] == "critical"


# 4. Clodronate oral: floor 10, daily-dose bands (L26)


@pytest.mark.parametrize("crcl, fires", [(9.9, True), (10, False)], ids=["crcl9.9", "crcl10"])
def test_clodronate_floor(post, crcl, fires):
    p = patient(crcl, setting="early")
    found = rules(post(p, clodronate(p, 800)))
    assert ("renal-contraindicated" in found) is fires
    if fires:
        assert found["renal-contraindicated"]["indicator"] == "critical"
    else:
        assert "renal-dose-adjust" not in found  # 800 mg/day is the 10-<30 band


@pytest.mark.parametrize(
    "crcl, dose, per_day, expected",
    [
        (50, 1600, 1, None),
        (49.9, 1600, 1, 1200),
        (49.9, 800, 2, 600),
        (30, 1200, 1, None),
        (29.9, 1200, 1, 800),
        (29.9, 400, 2, None),
    ],
    ids=["crcl50", "crcl49.9", "crcl49.9-bid", "crcl30-1200", "crcl29.9-1200", "crcl29.9-400bid"],
)
def test_clodronate_daily_dose_bands(post, crcl, dose, per_day, expected):
    p = patient(crcl, setting="early")
    found = rules(post(p, clodronate(p, dose, per_day=per_day)))
    assert "renal-contraindicated" not in found
    if expected is None:
        assert "renal-dose-adjust" not in found
        return
    card = found["renal-dose-adjust"]
    assert f"{dose * per_day:g} mg/day" in card["summary"]
    offer = ordered(card)
    assert offer["dose"] == expected and offer["frequency"] == per_day


def test_clodronate_on_dialysis_is_below_the_floor(post):
    p = on_dialysis(setting="early")
    found = rules(post(p, clodronate(p, 800)))
    assert found["renal-contraindicated"]["indicator"] == "critical"
    assert "renal-dose-adjust" not in found


@pytest.mark.parametrize("crcl, fires", [(50, False), (49.9, True)], ids=["crcl50", "crcl49.9"])
def test_clodronate_iv_renal_check(post, crcl, fires):
    p = patient(crcl)
    found = rules(post(p, clodronate(p, 1500, route="intravenous")))
    assert ("renal-dose-adjust" in found) is fires
    if fires:
        card = found["renal-dose-adjust"]
        assert card["indicator"] == "warning"
        assert "renal dose of IV clodronate: check the SmPC" in card["summary"]
        assert "CrCl 49.9 mL/min" in card["summary"]
        assert not actions(card)


# 5. Pamidronate below CrCl 30: critical only for bone metastases (L27)


@pytest.mark.parametrize(
    "setting, crcl, indicator",
    [
        ("bone-metastatic", 30, None),
        ("bone-metastatic", 29.9, "critical"),
        ("early", 29.9, "warning"),
        ("hypercalcemia", 29.9, "warning"),
        ("no-breast-cancer", 29.9, "warning"),
    ],
    ids=["metastatic-30", "metastatic-29.9", "early-29.9", "hypercalcemia-29.9", "no-cancer-29.9"],
)
def test_pamidronate_floor_by_setting(post, setting, crcl, indicator):
    p = patient(crcl, setting=setting)
    found = rules(post(p, pamidronate(p)))
    if indicator is None:
        assert "renal-contraindicated" not in found
        return
    card = found["renal-contraindicated"]
    assert card["indicator"] == indicator
    assert "CrCl 29.9 mL/min" in card["summary"]
    if indicator == "warning":
        assert "weigh" in card["summary"]
    assert actions(card, "delete")


def test_pamidronate_on_dialysis_outside_metastases_is_weighed(post):
    p = on_dialysis(setting="early")
    card = rules(post(p, pamidronate(p)))["renal-contraindicated"]
    assert card["indicator"] == "warning" and card["summary"].startswith("On dialysis")


@pytest.mark.parametrize(
    "dose, every, inappropriate",
    [(4, (4, "wk"), False), (2, (3, "wk"), False), (3, (3, "mo"), True)],
    ids=["4mg-4wk", "2mg-3wk", "3mg-3mo"],
)
def test_renal_doses_count_as_metastatic_regimens(post, dose, every, inappropriate):
    """Bone metastases: ibandronate 4 mg or 2 mg every 3-4 weeks is the oncology regimen at its
    renal dose; 3 mg every 3 months is the osteoporosis regimen."""
    p = patient(45 if dose == 4 else 25)
    found = rules(post(p, ibandronate(p, dose, every=every, minutes=60)))
    assert ("metastatic-schedule-inappropriate" in found) is inappropriate
    assert "renal-dose-adjust" not in found


def test_the_sig_text_of_a_band_update_says_what_changed_and_only_that(post):
    """The structured timing is what the EHR reads; the text is what the pharmacist reads: an
    interval change must not be written as a dose change."""
    p = patient(40, setting="early")
    draft = ibandronate(p, 50, route="oral", every=(1, "d"))
    draft["dosageInstruction"][0]["text"] = "50 mg by mouth once daily"
    card = rules(post(p, draft))["renal-dose-adjust"]
    assert ordered(card)["every"] == (2, "d") and ordered(card)["dose"] == 50
    text = actions(card, "update")[0]["resource"]["dosageInstruction"][0]["text"]
    assert text == "50 mg by mouth once daily (changed to every 2 days by the renal table)"


def test_the_sig_text_of_a_band_dose_update_names_the_new_dose(post):
    p = patient(29.9)
    draft = ibandronate(p, 6, every=(4, "wk"), minutes=60)
    draft["dosageInstruction"][0]["text"] = "6 mg IV every 4 weeks over 60 minutes"
    card = rules(post(p, draft))["renal-dose-adjust"]
    offer = ordered(card)
    text = actions(card, "update")[0]["resource"]["dosageInstruction"][0]["text"]
    assert f"(changed to {offer['dose']:g} mg" in text and "dose changed" not in text
