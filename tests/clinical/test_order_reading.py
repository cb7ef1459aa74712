"""Orders read as real EHRs send them: the product table, RxNorm names, tablet counts, volumes, dose
forms and routes.

Unit tests of the name parser and of read_bone_agent_order on the shapes integrators send (the CDS
Hooks Sandbox's `1 {pill}` order, mL of Zometa and pamidronate, tablets without a route, unknown and
local codes with a name, brand SBDs), then the same orders through the HTTP endpoint, and the
product table's own bookkeeping.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from hooks.cards import Finding
from hooks.engine import _with_recognition_note
from hooks.knowledge import load_knowledge
from hooks.orders import read_bone_agent_order
from hooks.product_names import parse_product_name
from tests.support.order_sign_http import early, metastatic, new_patient, prepared, rules

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ROUTE_CODES = {"oral": "26643006", "intravenous": "47625008", "subcutaneous": "34206005"}
KNOWLEDGE = load_knowledge()
RAW_PRODUCTS = json.loads(
    resources.files("hooks.knowledge").joinpath("bone-agents.json").read_bytes()
)["products"]
SANDBOX_ALENDRONATE = ("904431", "Alendronic acid 70 MG Oral Tablet")
ZOMETA_5ML = ("351114", "5 ML zoledronic acid 0.8 MG/ML Injection")
PAMIDRONATE_9MG_ML = ("1737453", "10 ML pamidronate disodium 9 MG/ML Injection")
UNKNOWN_RXNORM = "999990001"  # not an RxNorm code of any product in the table


def medication_request(
    code: str | None,
    display: str | None,
    value: float | None = None,
    unit: str | None = None,
    *,
    system: str | None = RXNORM,
    route: str | None = None,
    every: tuple[float, str] = (1, "d"),
    request_id: str = "draft-1",
    patient_id: str = "pt",
) -> dict[str, Any]:
    """A draft MedicationRequest the way the CDS Hooks Sandbox writes one: category as an object, a
    date-only authoredOn, the dose as a UCUM code without a display unit, the drug's name in text
    and coding display."""
    coding: dict[str, Any] = {}
    if code is not None:
        coding.update(system=system, code=code)
    if display is not None:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding]} if coding else {}
    if display is not None:
        concept["text"] = display
    dosage: dict[str, Any] = {
        "timing": {"repeat": {"frequency": 1, "period": every[0], "periodUnit": every[1]}}
    }
    if value is not None:
        dosage["text"] = f"{value:g} {unit} every {every[0]:g} {every[1]}"
        dosage["doseAndRate"] = [{"doseQuantity": {"value": value, "system": UCUM, "code": unit}}]
    if route is not None:
        dosage["route"] = {"coding": [{"system": SNOMED, "code": ROUTE_CODES[route]}]}
    return {
        "resourceType": "MedicationRequest",
        "id": request_id,
        "status": "draft",
        "intent": "order",
        "category": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                    "code": "community",
                }
            ]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2026-10-15",
        "medicationCodeableConcept": concept,
        "dosageInstruction": [dosage],
    }


def read(
    code: str | None,
    display: str | None,
    value: float | None = None,
    unit: str | None = None,
    **extra: Any,
):
    return read_bone_agent_order(
        medication_request(code, display, value, unit, **extra), {}, KNOWLEDGE
    )


# --- the name parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, name, strength, concentration, volume, form, brand",
    [
        (
            "Alendronic acid 70 MG Oral Tablet",
            "Alendronic acid",
            70,
            None,
            None,
            "Oral Tablet",
            None,
        ),
        (
            "5 ML zoledronic acid 0.8 MG/ML Injection",
            "zoledronic acid",
            4,
            0.8,
            5,
            "Injection",
            None,
        ),
        (
            "100 ML zoledronic acid 0.04 MG/ML Injection",
            "zoledronic acid",
            4,
            0.04,
            100,
            "Injection",
            None,
        ),
        (
            "100 ML zoledronic acid 0.05 MG/ML Injection [Reclast]",
            "zoledronic acid",
            5,
            0.05,
            100,
            "Injection",
            "Reclast",
        ),
        (
            "1.7 ML denosumab 70 MG/ML Injection [Xgeva]",
            "denosumab",
            119,
            70,
            1.7,
            "Injection",
            "Xgeva",
        ),
        (
            "denosumab 120 MG in 1.7 ML Injection",
            "denosumab",
            120,
            70.588235,
            1.7,
            "Injection",
            None,
        ),
        (
            "1 ML denosumab-bbdz 60 MG/ML Prefilled Syringe [Jubbonti]",
            "denosumab-bbdz",
            60,
            60,
            1,
            "Prefilled Syringe",
            "Jubbonti",
        ),
        (
            "10 ML pamidronate disodium 9 MG/ML Injection",
            "pamidronate disodium",
            90,
            9,
            10,
            "Injection",
            None,
        ),
        (
            "pamidronate disodium 90 MG Injection",
            "pamidronate disodium",
            90,
            None,
            None,
            "Injection",
            None,
        ),
        (
            "3 ML ibandronic acid 1 MG/ML Prefilled Syringe [Boniva]",
            "ibandronic acid",
            3,
            1,
            3,
            "Prefilled Syringe",
            "Boniva",
        ),
        (
            "risedronate sodium 35 MG Delayed Release Oral Tablet",
            "risedronate sodium",
            35,
            None,
            None,
            "Delayed Release Oral Tablet",
            None,
        ),
        (
            "alendronic acid 70 MG Effervescent Oral Tablet [Binosto]",
            "alendronic acid",
            70,
            None,
            None,
            "Effervescent Oral Tablet",
            "Binosto",
        ),
        (
            "alendronic acid 70 MG per 75 ML Oral Solution",
            "alendronic acid",
            70,
            0.933333,
            75,
            "Oral Solution",
            None,
        ),
        (
            "75 ML alendronic acid 0.933 MG/ML Oral Solution",
            "alendronic acid",
            69.975,
            0.933,
            75,
            "Oral Solution",
            None,
        ),
        (
            "{4 (risedronate sodium 35 MG Delayed Release Oral Tablet) } Pack [Atelvia]",
            "risedronate sodium",
            35,
            None,
            None,
            "Delayed Release Oral Tablet",
            "Atelvia",
        ),
        ("Alendronic acid 10 MG [Fosamax]", "Alendronic acid", 10, None, None, None, "Fosamax"),
        ("zoledronic acid 4 mg/5 mL injection", "zoledronic acid", 4, 0.8, 5, "Injection", None),
        ("Zometa 4 mg/5 mL", "Zometa", 4, 0.8, 5, None, None),
        (
            "clodronic acid 520 MG Oral Tablet",
            "clodronic acid",
            520,
            None,
            None,
            "Oral Tablet",
            None,
        ),
        (
            "ibandronic acid 2.5 MG Oral Tablet",
            "ibandronic acid",
            2.5,
            None,
            None,
            "Oral Tablet",
            None,
        ),
    ],
)
def test_parser_reads_rxnorm_names(text, name, strength, concentration, volume, form, brand):
    parsed = parse_product_name(text)
    assert parsed is not None
    component = parsed.components[0]
    assert component.name == name
    assert parsed.strength_mg(component) == pytest.approx(strength)
    if concentration is None:
        assert parsed.concentration_mg_per_ml(component) is None
    else:
        assert parsed.concentration_mg_per_ml(component) == pytest.approx(concentration)
    assert parsed.container_ml(component) == volume
    assert (parsed.dose_form, parsed.brand) == (form, brand)


def test_parser_reads_each_ingredient_of_a_combination():
    parsed = parse_product_name(
        "alendronic acid 70 MG / cholecalciferol 2800 UNT Oral Tablet [Fosamax Plus D]"
    )
    assert [(c.name, c.amount, c.unit) for c in parsed.components] == [
        ("alendronic acid", 70, "MG"),
        ("cholecalciferol", 2800, "UNT"),
    ]
    assert (parsed.dose_form, parsed.route_kind, parsed.brand) == (
        "Oral Tablet",
        "oral",
        "Fosamax Plus D",
    )
    assert parsed.strength_mg(parsed.components[1]) is None  # units are not milligrams


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "alendronate",
        "Zometa",
        "take one tablet weekly",
        "70 MG Oral Tablet",
        "zoledronic acid Injection",
        "a " * 400,
        "{4 (((( } Pack",
    ],
)
def test_parser_gives_nothing_for_a_name_without_a_strength(text):
    assert parse_product_name(text) is None


# --- reading orders: the shapes integrators send --------------------------------------------------


def test_sandbox_default_order_is_alendronate_70_mg_by_mouth():
    order = read(*SANDBOX_ALENDRONATE, 1, "{pill}")
    assert (order.ingredient, order.recognised_by, order.dose_mg) == (
        "alendronate",
        "RxNorm product code",
        70,
    )
    assert (order.route, order.route_from) == ("oral", "product")
    assert order.unlisted_codes == ()
    assert order.describe() == "alendronate 70 mg oral every day"


@pytest.mark.parametrize(
    "value, unit, mg",
    [
        (1, "{pill}", 70),
        (1, "{tbl}", 70),
        (1, "{tablet}", 70),
        (1, "{Tablet}", 70),
        (1, "tablet", 70),
        (2, "Tablets", 140),
        (1, "TABLET", 70),
        (1, "{capsule}", 70),
        (70, "mg", 70),
        (0.07, "g", 70),
        (1, "{vial}", None),
        (1, "mL", None),
        (1, "{puff}", None),
        (1, "", None),
    ],
    ids=[
        "pill",
        "tbl",
        "tablet-braces",
        "Tablet-braces",
        "tablet-text",
        "2-tablets",
        "TABLET",
        "capsule",
        "mg",
        "g",
        "vial-of-a-tablet",
        "mL-of-a-tablet",
        "puff",
        "no-unit",
    ],
)
def test_tablet_counts_become_mg(value, unit, mg):
    order = read(*SANDBOX_ALENDRONATE, value, unit)
    assert order.dose_mg == (pytest.approx(mg) if mg is not None else None)
    if mg is None:  # a dose that cannot be turned into mg is never taken to be the labelled dose
        assert order.dose_text == f"{value:g} {unit}".strip()


@pytest.mark.parametrize(
    "product, ml, mg",
    [
        (ZOMETA_5ML, 4.1, 3.28),
        (ZOMETA_5ML, 5, 4),
        (ZOMETA_5ML, 4.375, 3.5),
        (ZOMETA_5ML, 3.75, 3.0),
        (PAMIDRONATE_9MG_ML, 12, 108),
        (PAMIDRONATE_9MG_ML, 10, 90),
        (("1737451", "10 ML pamidronate disodium 6 MG/ML Injection"), 10, 60),
        (
            ("1046398", "1.7 ML denosumab 70 MG/ML Injection"),
            1.7,
            120,
        ),  # a whole vial is its labelled 120 mg
        (("1046398", "1.7 ML denosumab 70 MG/ML Injection"), 1, 70),
        (
            ("1865665", "zoledronic acid 4 MG Injection"),
            5,
            None,
        ),  # a powder: no concentration, so mL give no mg
    ],
)
def test_volumes_become_mg_through_the_concentration(product, ml, mg):
    order = read(*product, ml, "mL", route="intravenous")
    assert order.dose_mg == (pytest.approx(mg) if mg is not None else None)


def test_vials_and_syringes_count_whole_products():
    assert read(*ZOMETA_5ML, 1, "{vial}").dose_mg == 4
    assert (
        read(
            "2717555", "1.7 ML denosumab-bnht 70 MG/ML Prefilled Syringe [Bomyntra]", 1, "{syringe}"
        ).dose_mg
        == 120
    )
    assert read("993456", None, 1, "syringe").dose_mg == 60
    assert read(*ZOMETA_5ML, 1, "{pill}").dose_mg is None


@pytest.mark.parametrize(
    "display, value, unit, mg",
    [
        ("ibandronic acid 2.5 MG Oral Tablet", 1, "{tbl}", 2.5),
        ("clodronic acid 520 MG Oral Tablet", 2, "tablet", 1040),
        ("clodronate disodium 520 MG Oral Capsule", 1, "{capsule}", 520),
        ("risedronate sodium 35 MG Delayed Release Oral Tablet", 1, "{pill}", 35),
    ],
)
def test_tablets_sent_without_a_route_are_oral(display, value, unit, mg):
    order = read(None, display, value, unit)
    assert (order.route, order.route_from, order.dose_mg) == ("oral", "product", mg)
    assert order.recognised_by == "name" and order.unlisted_codes == ()


def test_route_comes_from_the_order_first_then_the_dose_form_then_a_single_route_ingredient():
    assert read(*SANDBOX_ALENDRONATE, 70, "mg", route="oral").route_from == "order"
    injected = read(None, "zoledronic acid 4 MG Injection", 4, "mg")
    assert (injected.route, injected.route_from) == ("intravenous", "product")
    syringe = read(None, "1 ML denosumab 60 MG/ML Prefilled Syringe", 60, "mg")
    assert (syringe.route, syringe.route_from) == ("subcutaneous", "product")
    by_ingredient = read("46041", "alendronate", 70, "mg")
    assert (by_ingredient.route, by_ingredient.route_from) == ("oral", "ingredient")
    # a tablet is swallowed, though its strength is unknown
    counted = read("115264", "ibandronate", 1, "{tablet}")
    assert (counted.route, counted.route_from, counted.dose_mg) == ("oral", "dose unit", None)


@pytest.mark.parametrize(
    "code, text, mg",
    [
        ("115264", "ibandronate", 2.5),
        ("115264", "ibandronate", 6),
        (None, "clodronate", 520),
        (None, "clodronate", 1500),
    ],
)
def test_two_route_ingredients_without_route_or_form_stay_unknown_never_iv(code, text, mg):
    order = read(code, text, mg, "mg")
    assert (order.route, order.route_from) == (None, None)


def test_unknown_rxnorm_code_is_read_by_name_and_named():
    order = read(UNKNOWN_RXNORM, "alendronic acid 35 MG Oral Tablet", 1, "{pill}", every=(1, "wk"))
    assert (order.ingredient, order.recognised_by, order.dose_mg, order.route) == (
        "alendronate",
        "name",
        35,
        "oral",
    )
    assert order.unlisted_codes == (f"RxNorm {UNKNOWN_RXNORM}",)
    assert order.product.rxnorm == UNKNOWN_RXNORM and order.product.status == "name"
    assert order.product_description == "alendronate 35 mg oral tablet"


def test_local_code_with_a_name_is_read_by_name_and_named():
    order = read("BMA-7", "Zometa 4 mg/5 mL", 4.1, "mL", system="urn:oid:2.16.840.1.113883.3.999")
    assert (order.ingredient, order.recognised_by, order.dose_mg) == (
        "zoledronic-acid",
        "name",
        pytest.approx(3.28),
    )
    assert (order.route, order.route_from) == ("intravenous", "ingredient")
    assert order.unlisted_codes == ("Code BMA-7 (urn:oid:2.16.840.1.113883.3.999)",)


def test_text_only_order_names_no_code():
    order = read(None, "Alendronic acid 70 MG Oral Tablet", 1, "{pill}")
    assert (order.recognised_by, order.dose_mg, order.unlisted_codes) == ("name", 70, ())


def test_ingredient_code_with_a_product_name_keeps_the_code_and_gains_the_strength():
    order = read("M05BA08", "zoledronic acid 4 MG Injection", 1, "{vial}", system=ATC)
    assert (order.recognised_by, order.dose_mg, order.route) == ("ATC code", 4, "intravenous")
    assert order.formulation.id == "zoledronic-acid-4mg"


@pytest.mark.parametrize(
    "code, ingredient, strength, route, brand",
    [
        ("705875", "zoledronic-acid", 5, "intravenous", "Reclast"),
        ("904934", "ibandronate", 150, "oral", "Boniva"),
        ("904954", "ibandronate", 3, "intravenous", "Boniva"),
        ("905030", "risedronate", 150, "oral", "Actonel"),
        ("1020066", "risedronate", 35, "oral", "Atelvia"),
        ("1046402", "denosumab", 120, "subcutaneous", "Xgeva"),
        ("993456", "denosumab", 60, "subcutaneous", "Prolia"),
        ("2715393", "denosumab", 120, "subcutaneous", "Wyost"),
        ("904421", "alendronate", 10, "oral", "Fosamax"),
    ],
)
def test_brand_products_resolve_by_code(code, ingredient, strength, route, brand):
    order = read(code, None, 1, {"oral": "{pill}"}.get(route, "{vial}"))
    assert (order.ingredient, order.dose_mg, order.route, order.product.brand) == (
        ingredient,
        strength,
        route,
        brand,
    )


def test_unverified_code_takes_strength_from_its_own_name_and_never_guesses_without_one():
    named = read("904425", "alendronic acid 35 MG Oral Tablet", 1, "{pill}")
    assert (named.recognised_by, named.dose_mg, named.route) == ("RxNorm product code", 35, "oral")
    bare = read("904425", None, 1, "{pill}")
    assert (bare.ingredient, bare.dose_mg, bare.route) == ("alendronate", None, "oral")


def test_synonyms_of_acid_and_salt_names_all_read():
    for text, ingredient in [
        ("alendronate sodium 70 MG Oral Tablet", "alendronate"),
        ("ibandronate sodium 150 MG Oral Tablet", "ibandronate"),
        ("zoledronate 4 MG Injection", "zoledronic-acid"),
        ("pamidronic acid 90 MG Injection", "pamidronate"),
        ("risedronic acid 35 MG Oral Tablet", "risedronate"),
        ("sodium clodronate 400 MG Oral Capsule", "clodronate"),
        ("etidronate disodium 400 MG Oral Tablet", "etidronate"),
    ]:
        order = read(None, text, 1, "{tablet}")
        assert order.ingredient == ingredient, text


@pytest.mark.parametrize(
    "product",
    [p for p in KNOWLEDGE.product_by_rxnorm.values() if p.verified],
    ids=lambda p: p.rxnorm,
)
def test_each_verified_product_code_resolves_to_its_ingredient_strength_and_route(product):
    unit = {"tablet": "{pill}", "vial": "{vial}", "syringe": "{syringe}", "bottle": "{bottle}"}[
        product.unit
    ]
    order = read(product.rxnorm, None, 1, unit)
    assert (order.ingredient, order.recognised_by, order.route) == (
        product.ingredient,
        "RxNorm product code",
        product.route,
    )
    assert order.dose_mg == product.strength_mg
    oral_form = product.dose_form is None or "Oral" in product.dose_form
    assert (product.route == "oral") is oral_form
    parsed = parse_product_name(product.display)  # the table agrees with its own RxNorm name
    if parsed is not None:
        component = parsed.components[0]
        assert parsed.dose_form == product.dose_form
        assert parsed.container_ml(component) == product.volume_ml
        assert parsed.concentration_mg_per_ml(component) == product.concentration_mg_per_ml
        assert parsed.strength_mg(component) == pytest.approx(product.strength_mg, rel=0.01)


# --- the recognition note -------------------------------------------------------------------------


def _note(order) -> str:
    return _with_recognition_note(Finding("r", "warning", "s", "detail", ()), order).detail


def test_note_names_the_unlisted_code_and_what_the_name_says():
    note = _note(read(UNKNOWN_RXNORM, "Alendronic acid 70 MG Oral Tablet", 1, "{pill}"))
    assert (
        f"RxNorm {UNKNOWN_RXNORM} is not in the knowledge; recognised by its name "
        "(alendronate 70 mg oral tablet)" in note
    )
    assert "no RxNorm or ATC code" not in note and "no medication code" not in note


def test_note_names_the_unlisted_product_code_beside_a_listed_ingredient_code():
    request = medication_request(UNKNOWN_RXNORM, "zoledronic acid 4 MG Injection", 1, "{vial}")
    request["medicationCodeableConcept"]["coding"].append({"system": ATC, "code": "M05BA08"})
    order = read_bone_agent_order(request, {}, KNOWLEDGE)
    assert (order.recognised_by, order.dose_mg, order.unlisted_codes) == (
        "ATC code",
        4,
        (f"RxNorm {UNKNOWN_RXNORM}",),
    )
    assert (
        f"RxNorm {UNKNOWN_RXNORM} is not in the knowledge; recognised by its ATC code, the product"
        " read from its name (zoledronic acid 4 mg injection)" in _note(order)
    )


def test_note_says_no_code_only_when_there_is_none():
    assert "the order carries no medication code" in _note(
        read(None, "Alendronic acid 70 MG Oral Tablet", 1, "{pill}")
    )
    # recognised by its code: no note
    assert _note(read(*SANDBOX_ALENDRONATE, 1, "{pill}")) == "detail"


# --- through HTTP ---------------------------------------------------------------------------------


def _sandbox(p, code, display, value, unit, **extra):
    return medication_request(
        code,
        display,
        value,
        unit,
        request_id=f"{p.patient_id}-draft",
        patient_id=p.patient_id,
        **extra,
    )


def _no_card_denies_a_code(cards):
    for card in cards:
        assert (
            "no RxNorm or ATC code" not in card["detail"]
            and "carries no medication code" not in card["detail"]
        )


def test_sandbox_alendronate_daily_pill_draws_the_weekly_regimen_card(post):
    p = prepared(early(new_patient("sandbox")))
    cards = post(p, _sandbox(p, *SANDBOX_ALENDRONATE, 1, "{pill}"))
    card = rules(cards)["oral-bp-regimen"]
    assert card["summary"] == "Alendronate 70 mg ordered every day: it is taken every week"
    assert "**alendronate 70 mg oral every day**" in card["detail"]
    _no_card_denies_a_code(cards)


def test_sandbox_alendronate_weekly_pill_is_quiet(post):
    p = prepared(early(new_patient("sandbox")))
    assert "oral-bp-regimen" not in rules(
        post(p, _sandbox(p, *SANDBOX_ALENDRONATE, 1, "{pill}", every=(1, "wk")))
    )


@pytest.mark.parametrize("ml, ordered", [(4.1, "3.28 mg"), (5, "4 mg"), (3.75, None)])
def test_zometa_millilitres_are_read_as_mg_against_the_renal_table(post, ml, ordered):
    # CrCl 34.9
    p = prepared(metastatic(new_patient("zometa-ml")), renal=False).creatinine(5, 1.8).weight(5, 70)
    cards = post(p, _sandbox(p, *ZOMETA_5ML, ml, "mL", route="intravenous", every=(12, "wk")))
    card = rules(cards).get("renal-dose-adjust")
    if ordered is None:  # 3.75 mL is exactly the 3 mg of the table
        assert card is None
        return
    assert (
        card["summary"] == f"Zoledronic acid dose for CrCl 34.9 mL/min is 3 mg (ordered {ordered})"
    )
    assert f"**zoledronic acid {ordered} IV every 12 weeks**" in card["detail"]
    _no_card_denies_a_code(cards)


def test_pamidronate_millilitres_above_the_maximum(post):
    p = prepared(metastatic(new_patient("pamidronate-ml")))
    cards = post(
        p, _sandbox(p, *PAMIDRONATE_9MG_ML, 12, "mL", route="intravenous", every=(4, "wk"))
    )
    card = rules(cards)["dose-above-maximum"]
    assert card["summary"] == "Pamidronate 108 mg is above the maximum single dose of 90 mg"
    assert "dose-above-maximum" not in rules(
        post(p, _sandbox(p, *PAMIDRONATE_9MG_ML, 10, "mL", route="intravenous", every=(4, "wk")))
    )


def test_unknown_rxnorm_code_card_names_the_code(post):
    p = prepared(early(new_patient("unknown-scd")))
    cards = post(p, _sandbox(p, UNKNOWN_RXNORM, "Alendronic acid 70 MG Oral Tablet", 1, "{pill}"))
    card = rules(cards)["oral-bp-regimen"]
    assert (
        f"RxNorm {UNKNOWN_RXNORM} is not in the knowledge; recognised by its name (alendronate 70"
        " mg oral tablet)" in card["detail"]
    )
    _no_card_denies_a_code(cards)


def test_local_code_card_names_the_code(post):
    p = prepared(early(new_patient("local-code")))
    cards = post(
        p, _sandbox(p, "ALN-70", "Fosamax 70 mg tablet", 1, "{tablet}", system="urn:oid:1.2.3.4")
    )
    card = rules(cards)["oral-bp-regimen"]
    assert (
        "Code ALN-70 (urn:oid:1.2.3.4) is not in the knowledge; recognised by its name"
        in card["detail"]
    )
    _no_card_denies_a_code(cards)


@pytest.mark.parametrize(
    "display, value, unit, iv",
    [
        ("ibandronic acid 2.5 MG Oral Tablet", 1, "{tbl}", False),
        ("clodronic acid 520 MG Oral Tablet", 2, "tablet", False),
        (
            "3 ML ibandronic acid 1 MG/ML Prefilled Syringe",
            1,
            "{syringe}",
            True,
        ),  # the dose form makes this one IV
    ],
)
def test_tablets_without_route_are_never_judged_as_iv(post, display, value, unit, iv):
    # CrCl 24.2
    p = prepared(early(new_patient("tablets")), renal=False).creatinine(5, 2.6).weight(5, 70)
    cards = post(p, _sandbox(p, None, display, value, unit))
    if iv:
        assert (
            rules(cards)["renal-contraindicated"]["summary"]
            == "CrCl 24.2 mL/min is below the limit of 30 mL/min: do not give ibandronate IV"
        )
        return
    for card in cards:
        assert " IV" not in card["summary"] and " IV " not in card["detail"], card["summary"]
        assert "infus" not in card["summary"].lower()


# --- the product table ----------------------------------------------------------------------------


def test_every_product_has_a_status_and_a_source():
    for entry in RAW_PRODUCTS:
        assert entry["status"] in ("V", "UNVERIFIED"), entry["rxnorm"]
        assert entry.get("source") and entry.get("evidence"), entry["rxnorm"]
        assert (
            entry["ingredient"] in KNOWLEDGE.ingredient_display
            and entry["route"] in KNOWLEDGE.raw["routes"]
        )


def test_product_codes_are_unique():
    codes = [entry["rxnorm"] for entry in RAW_PRODUCTS]
    assert len(codes) == len(set(codes))


def test_the_table_covers_each_ingredient_and_brand_ordered_in_the_us():
    by_ingredient = {}
    for product in KNOWLEDGE.product_by_rxnorm.values():
        by_ingredient.setdefault(product.ingredient, []).append(product)
    for ingredient in (
        "zoledronic-acid",
        "pamidronate",
        "ibandronate",
        "alendronate",
        "risedronate",
        "denosumab",
    ):
        assert any(p.verified for p in by_ingredient[ingredient]), ingredient
    brands = {p.brand for p in KNOWLEDGE.product_by_rxnorm.values() if p.verified}
    assert {"Reclast", "Boniva", "Fosamax", "Actonel", "Atelvia", "Xgeva", "Prolia"} <= brands
    assert {
        "Wyost",
        "Jubbonti",
        "Osenvelt",
        "Stoboclo",
        "Bomyntra",
        "Conexxence",
        "Bilprevda",
        "Bildyos",
    } <= brands
