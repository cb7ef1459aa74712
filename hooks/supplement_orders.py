"""Draft calcium and vitamin D3 orders on the knowledge file's regimens, with dose and timing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hooks.cards import Action, Suggestion
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder
from hooks.suggestions import ROUTE_CODES, UCUM

TIMES_A_DAY = {1: "once daily", 2: "twice daily", 3: "three times daily"}


@dataclass(frozen=True)
class CalciumRegimen:
    """Elemental calcium per dose and doses a day for one bone-agent order, with its sources."""

    dose_mg: float
    per_day: int
    sources: tuple[str, ...]
    basis: str
    if_intake_insufficient: bool

    @property
    def daily_mg(self) -> float:
        return self.dose_mg * self.per_day

    def words(self) -> str:
        """'500 mg twice daily (1000 mg a day)'."""
        daily = f" ({self.daily_mg:g} mg a day)" if self.per_day > 1 else ""
        times = TIMES_A_DAY.get(self.per_day, f"{self.per_day} times daily")
        return f"{self.dose_mg:g} mg {times}{daily}"


def _section(knowledge: Knowledge) -> dict[str, Any]:
    return knowledge.raw["supplements"]


def calcium_regimen(knowledge: Knowledge, order: BoneAgentOrder, setting: str) -> CalciumRegimen:
    """The first entry of the knowledge's calcium regimens that matches the order's product
    (formulation) and the clinical setting; the table ends with the default for any other agent."""
    spec = _section(knowledge)["calcium"]
    formulation = order.formulation.id if order.formulation else None
    dose = float(spec["dose"]["value"])
    if dose > spec["max_elemental_mg_per_dose"] + 1e-9:
        raise ValueError(f"calcium {dose:g} mg a dose is above the knowledge file's maximum")
    for entry in spec["regimens"]:
        if "formulations" in entry and formulation not in entry["formulations"]:
            continue
        if "settings" in entry and setting not in entry["settings"]:
            continue
        return CalciumRegimen(
            dose,
            int(entry["per_day"]),
            tuple(entry["sources"]),
            entry["basis"],
            bool(entry.get("if_dietary_intake_insufficient")),
        )
    raise ValueError("the knowledge file's calcium regimens have no default entry")


def vitamin_d_words(knowledge: Knowledge) -> str:
    """'800 IU once daily'."""
    spec = _section(knowledge)["vitamin-d"]
    return f"{spec['dose']['value']:g} {spec['dose']['unit']} {TIMES_A_DAY[spec['per_day']]}"


def vitamin_d_basis(knowledge: Knowledge) -> tuple[str, tuple[str, ...]]:
    spec = _section(knowledge)["vitamin-d"]
    return spec["basis"], tuple(spec["sources"])


def calcium_spacing_text(knowledge: Knowledge, ingredients: Iterable[str]) -> str | None:
    """Patient instruction keeping calcium apart from oral bisphosphonates ('Not at the same time as
    alendronate: take calcium at least 30 minutes after alendronate ...'); None without one."""
    spacing = _section(knowledge)["calcium_spacing"]
    names = list(dict.fromkeys(ingredients))
    if not names:
        return None
    displays = [knowledge.ingredient_display.get(name, name) for name in names]
    after = [
        f"{spacing['by_ingredient'].get(name, spacing['minutes'])} minutes after {display}"
        for name, display in zip(names, displays, strict=True)
    ]
    return (
        f"Not at the same time as {' or '.join(displays)}: take calcium at least "
        f"{', and '.join(after)} (calcium taken with it stops it being absorbed)."
    )


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _product_concept(knowledge: Knowledge, product_key: str) -> dict[str, Any]:
    """The orderable product; coded only when the knowledge file has its RxCUI (a code not yet
    verified is left out, the product name stays)."""
    product = _section(knowledge)["products"][product_key]
    concept: dict[str, Any] = {"text": product["display"]}
    if product.get("rxnorm"):
        concept["coding"] = [
            {
                "system": knowledge.systems["rxnorm"],
                "code": product["rxnorm"],
                "display": product["display"],
            }
        ]
    return concept


def _draft(
    medication: dict[str, Any],
    dosage: dict[str, Any],
    patient_reference: str,
    requester: str | None,
    now: datetime,
    reason: str,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": {"reference": patient_reference},
        "authoredOn": _instant(now),
        "reasonCode": [{"text": reason}],
        "dosageInstruction": [dosage],
    }
    if requester:
        resource["requester"] = {"reference": requester}
    return resource


def _route(knowledge: Knowledge, route: str) -> dict[str, Any]:
    code, display = ROUTE_CODES[route]
    return {"coding": [{"system": knowledge.systems["snomed"], "code": code, "display": display}]}


def _dose(dose: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "doseQuantity": {
                "value": dose["value"],
                "unit": dose["unit"],
                "system": UCUM,
                "code": dose["code"],
            }
        }
    ]


def _daily_dosage(
    knowledge: Knowledge,
    spec: dict[str, Any],
    per_day: int,
    text: str,
    patient_instruction: str | None,
) -> dict[str, Any]:
    dosage: dict[str, Any] = {
        "text": text,
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "route": _route(knowledge, spec["route"]),
        "doseAndRate": _dose(spec["dose"]),
    }
    if patient_instruction:
        dosage["patientInstruction"] = patient_instruction
    return dosage


def _units(spec: dict[str, Any], product: dict[str, Any]) -> str:
    count = spec["units_per_dose"]
    return f"{count} {product['form']}{'s' if count != 1 else ''} of {product['display']}"


def calcium_order(
    knowledge: Knowledge,
    regimen: CalciumRegimen,
    patient_reference: str,
    requester: str | None,
    now: datetime,
    reason: str,
    patient_instruction: str | None = None,
) -> Suggestion:
    """A draft calcium prescription on the regimen (elemental calcium per dose, doses a day)."""
    spec = _section(knowledge)["calcium"]
    product = _section(knowledge)["products"][spec["product"]]
    text = (
        f"Calcium {regimen.words()} by mouth: {_units(spec, product)} per dose "
        f"({regimen.dose_mg:g} mg elemental calcium)"
        + (", if dietary intake is insufficient" if regimen.if_intake_insufficient else "")
    )
    dosage = _daily_dosage(knowledge, spec, regimen.per_day, text, patient_instruction)
    resource = _draft(
        _product_concept(knowledge, spec["product"]),
        dosage,
        patient_reference,
        requester,
        now,
        reason,
    )
    return Suggestion(
        f"Prescribe calcium {regimen.words()}",
        (Action("create", f"Create a draft prescription: {text}", resource=resource),),
    )


def vitamin_d_order(
    knowledge: Knowledge, patient_reference: str, requester: str | None, now: datetime, reason: str
) -> Suggestion:
    """A draft vitamin D3 prescription on the knowledge's maintenance regimen (800 IU daily)."""
    spec = _section(knowledge)["vitamin-d"]
    product = _section(knowledge)["products"][spec["product"]]
    words = vitamin_d_words(knowledge)
    text = f"Vitamin D3 {words} by mouth: {_units(spec, product)} per dose"
    dosage = _daily_dosage(knowledge, spec, spec["per_day"], text, None)
    resource = _draft(
        _product_concept(knowledge, spec["product"]),
        dosage,
        patient_reference,
        requester,
        now,
        reason,
    )
    return Suggestion(
        f"Prescribe vitamin D3 {words}",
        (Action("create", f"Create a draft prescription: {text}", resource=resource),),
    )


def vitamin_d_repletion_order(
    knowledge: Knowledge, patient_reference: str, requester: str | None, now: datetime, reason: str
) -> Suggestion | None:
    """A draft vitamin D3 repletion prescription, only when the knowledge file holds a complete
    regimen (dose, interval and duration): the sources give none, and a one-click order without a
    dose is not an order."""
    entry = _section(knowledge)["vitamin-d-repletion"]
    if not (entry.get("dose") and entry.get("every") and entry.get("duration")):
        return None
    dosage: dict[str, Any] = {"text": entry["text"]}
    period, unit = entry["every"]
    length, length_unit = entry["duration"]
    dosage["timing"] = {
        "repeat": {
            "frequency": 1,
            "period": period,
            "periodUnit": unit,
            "boundsDuration": {
                "value": length,
                "unit": length_unit,
                "system": UCUM,
                "code": length_unit,
            },
        }
    }
    dosage["route"] = _route(knowledge, entry["route"])
    dosage["doseAndRate"] = _dose(entry["dose"])
    medication = {
        "coding": [
            {
                "system": knowledge.systems["rxnorm"],
                "code": entry["rxnorm"],
                "display": entry["display"],
            }
        ],
        "text": entry["display"],
    }
    resource = _draft(medication, dosage, patient_reference, requester, now, reason)
    return Suggestion(
        f"Prescribe {entry['text'][0].lower()}{entry['text'][1:]}",
        (Action("create", f"Create a draft prescription: {entry['text']}", resource=resource),),
    )
