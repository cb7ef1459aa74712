"""Posters for the order-select and patient-view services through the whole HTTP path, and checks of
the draft MedicationRequests that review cards suggest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest

from fixtures.builder import ANCHOR_INSTANT, PatientBuilder, draft_orders
from fixtures.prefetch import hook_request, transaction_resources

ORDER_SELECT = "bonecds-order-select"
PATIENT_VIEW = "bonecds-patient-view"
CLINICIAN = "Practitioner/bcds-clinician-1"

# regimen -> (medication code, dose mg, route SNOMED, every): what a suggestion for it must order
REGIMENS = {
    "za-12-weekly": ("1865665", 4, "47625008", (12, "wk")),
    "za-6-monthly": ("1865665", 4, "47625008", (6, "mo")),
    "denosumab-120-4-weekly": ("1046398", 120, "34206005", (4, "wk")),
    "clodronate-daily": ("M05BA02", 1600, "26643006", (1, "d")),
    "alendronate-weekly": ("46041", 70, "26643006", (1, "wk")),
}


def request_body(
    app,
    service_id: str,
    patient: PatientBuilder,
    *orders: dict,
    selections: list[str] | None = None,
    prefetch_keys: list[str] | None = None,
    user_id: str = CLINICIAN,
) -> dict[str, Any]:
    """A hook request: patient-view without draftOrders; order-select with `selections` (None =
    every order given)."""
    service = app.extensions["bonecds"].services[service_id]
    body = hook_request(
        service,
        patient.patient_id,
        draft_orders(*orders),
        user_id=user_id,
        resources=transaction_resources(patient.transaction()),
        prefetch_keys=prefetch_keys,
    )
    if service.hook == "patient-view":
        del body["context"]["draftOrders"]
    else:
        body["context"]["selections"] = (
            selections
            if selections is not None
            else [f"MedicationRequest/{o['id']}" for o in orders]
        )
    return body


def hook_poster(app, service_id: str) -> Callable[..., list[dict]]:
    """Post(patient, *orders, selections=None, prefetch_keys=None, user_id=...) -> cards (asserting
    a 200)."""
    client = app.test_client()

    def post(patient: PatientBuilder, *orders: dict, **options: Any) -> list[dict]:
        response = client.post(
            f"/cds-services/{service_id}",
            json=request_body(app, service_id, patient, *orders, **options),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["cards"]

    return post


def check_regimen_suggestions(
    card: dict,
    patient: PatientBuilder,
    regimens: tuple[str, ...],
    requester: str | None = CLINICIAN,
) -> list[dict]:
    """The card offers exactly these regimens as alternatives (first one recommended), each a
    complete draft MedicationRequest that validates against the R4B model; returns the resources."""
    suggestions = card.get("suggestions", [])
    assert len(suggestions) == len(regimens), [s["label"] for s in suggestions]
    assert card["selectionBehavior"] == "at-most-one"
    assert [bool(s.get("isRecommended")) for s in suggestions] == [True] + [False] * (
        len(regimens) - 1
    )
    resources = []
    for suggestion, name in zip(suggestions, regimens, strict=True):
        (action,) = suggestion["actions"]
        assert action["type"] == "create"
        resource = action["resource"]
        MedicationRequest.model_validate(resource)
        code, dose, route, every = REGIMENS[name]
        dosage = resource["dosageInstruction"][0]
        repeat = dosage["timing"]["repeat"]
        assert (resource["status"], resource["intent"], resource["subject"]) == (
            "draft",
            "order",
            {"reference": patient.reference},
        )
        assert resource["medicationCodeableConcept"]["coding"][0]["code"] == code
        assert dosage["doseAndRate"][0]["doseQuantity"] == {
            "value": dose,
            "unit": "mg",
            "system": "http://unitsofmeasure.org",
            "code": "mg",
        }
        assert dosage["route"]["coding"][0]["code"] == route
        assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, *every)
        assert resource["authoredOn"] == ANCHOR_INSTANT.isoformat().replace("+00:00", "Z")
        assert resource.get("requester") == ({"reference": requester} if requester else None)
        resources.append(resource)
    return resources
