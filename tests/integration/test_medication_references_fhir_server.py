"""MedicationReference and paged prefetch against a real FHIR server (sekmet, or FHIR_BASE_URL): the
server answers the discovery template's `_include=MedicationRequest:medication`, the service reads a
draft's Medication and the record's Medications from it with the token, and follows a paged
prefetch's `next` link to it."""

from __future__ import annotations

import httpx
import pytest

from fixtures.builder import MEDICATIONS, day, draft_orders, medication_request
from fixtures.load import load_fixtures
from fixtures.prefetch import hook_request, prefetch_templates, transaction_resources
from tests.support.fhir_apps import app_reading_from
from tests.support.order_sign_http import early, new_patient, order, prepared

pytestmark = pytest.mark.integration

SERVICE_ID = "bonecds-order-sign"
FIRST_PAGE = "first page of the EHR's search only"


def medication(medication_id: str, key: str) -> dict:
    system, code, display = MEDICATIONS[key]
    return {
        "resourceType": "Medication",
        "id": medication_id,
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
    }


@pytest.fixture(scope="module")
def loaded(fhir_server):
    """An early-breast-cancer patient without DXA, on anastrozole ordered by reference (as Synthea
    writes it), with a calcium/vitamin D order, and a zoledronic acid Medication for the draft: all
    on the server, Medications included."""
    p = early(prepared(new_patient("medref-int", age=64)))
    ai, za = (
        medication(f"{p.patient_id}-anastrozole", "anastrozole"),
        medication(f"{p.patient_id}-za4", "zoledronic-acid-4mg"),
    )
    request = medication_request(f"{p.patient_id}-ai", p.patient_id, "anastrozole", status="active")
    request.pop("medicationCodeableConcept")
    request.update(medicationReference={"reference": f"Medication/{ai['id']}"}, authoredOn=day(60))
    p.resources += [ai, za, request]
    load_fixtures(fhir_server.base_url, fhir_server.token, [p.transaction()], names=[p.patient_id])
    return fhir_server, p, za


@pytest.fixture(scope="module")
def app(loaded, tmp_path_factory):
    server = loaded[0]
    tmp = tmp_path_factory.mktemp("medref-int")
    return app_reading_from(server.base_url, tmp / "t.db")


def post(app, body: dict) -> list[dict]:
    response = app.test_client().post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def by_rule(cards: list[dict]) -> dict[str, dict]:
    return {card["source"]["topic"]["code"]: card for card in cards}


def draft_by_reference(p, za: dict) -> dict:
    draft = order(p, every=(6, "mo"))
    draft.pop("medicationCodeableConcept")
    draft["medicationReference"] = {"reference": f"Medication/{za['id']}"}
    return draft


def test_server_answers_the_include_template(loaded, app):
    server, p, _ = loaded
    template = next(k.template for k in prefetch_templates() if k.key == "medications")
    query = template.replace("{{context.patientId}}", p.patient_id)
    with httpx.Client(
        base_url=server.base_url, headers=server.auth_headers(), timeout=30
    ) as client:
        bundle = client.get(f"/{query}", headers={"Accept": "application/fhir+json"}).json()
    included = [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == "include"
    ]
    assert included == [f"{p.patient_id}-anastrozole"]


@pytest.mark.parametrize("prefetch", ["none", "without-medications"])
def test_draft_and_record_medications_are_read_from_the_server(loaded, app, prefetch):
    """No prefetch (the searches _include the record's Medications; the draft's is read), or a
    prefetch from an EHR that ignores _include (both Medications are read): the draft is zoledronic
    acid, the patient is on an aromatase inhibitor, and nothing is reported missing."""
    server, p, za = loaded
    service = app.extensions["bonecds"].services[SERVICE_ID]
    resources = [
        r for r in transaction_resources(p.transaction()) if r["resourceType"] != "Medication"
    ]
    body = hook_request(
        service,
        p.patient_id,
        draft_orders(draft_by_reference(p, za)),
        resources=resources if prefetch != "none" else None,
        fhir_server=server.base_url,
        token=server.token,
    )
    found = by_rule(post(app, body))
    assert "record-incomplete" not in found, found.get("record-incomplete", {}).get("detail")
    assert "- Endocrine therapy: anastrozole (active" in found["dxa-missing"]["detail"]
    assert set(found) == {"dxa-missing"}


def test_paged_prefetch_is_followed_to_the_server(loaded, app):
    """The EHR sends the medications search one order per page: the service reads page 2 (the
    calcium/vitamin D order) from the server, so no supplement card; without the server it says the
    first page was all it saw."""
    server, p, za = loaded
    service = app.extensions["bonecds"].services[SERVICE_ID]
    template = next(k.template for k in prefetch_templates() if k.key == "medications")
    query = template.replace("{{context.patientId}}", p.patient_id).replace(
        "_count=100", "_count=1"
    )
    with httpx.Client(
        base_url=server.base_url, headers=server.auth_headers(), timeout=30
    ) as client:
        first_page = client.get(f"/{query}", headers={"Accept": "application/fhir+json"}).json()
    assert any(link.get("relation") == "next" for link in first_page.get("link", []))
    resources = transaction_resources(p.transaction())

    def request(fhir_server: str | None) -> dict:
        body = hook_request(
            service,
            p.patient_id,
            draft_orders(order(p, every=(6, "mo"))),
            resources=resources,
            fhir_server=fhir_server,
            token=server.token if fhir_server else None,
        )
        body["prefetch"]["medications"] = first_page
        return body

    followed = by_rule(post(app, request(server.base_url)))
    assert set(followed) == {"dxa-missing"} and FIRST_PAGE not in followed["dxa-missing"]["detail"]
    alone = by_rule(post(app, request(None)))
    assert "supplements-missing" in alone and FIRST_PAGE in alone["supplements-missing"]["detail"]
    assert not any("could not be retrieved" in card["detail"] for card in alone.values())
