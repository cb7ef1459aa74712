"""Fixtures in real shapes (issue 13): Synthea-shaped transaction Bundles and how they load, the CDS
Hooks Sandbox's order shape, the prefetch emulator's urn:uuid resolution and `next` links, and what
the real-shape scenarios' cards say beyond their rule ids (the catalog's wording: a coded order
never "carries no code", a forearm T-score is "seen, not used", dialysis is named, no Cockcroft-
Gault value is guessed)."""

from __future__ import annotations

import json
import re

import pytest

from fixtures.builder import draft_orders, sandbox_medication_request
from fixtures.load import FixtureLoadError, as_upserts, assigned_ids, check_bundle
from fixtures.prefetch import build_prefetch, scenario_request, transaction_resources
from fixtures.scenarios import all_scenarios, scenario
from fixtures.scenarios_real_shapes import OFFERS_REAL_SHAPES
from fixtures.synthea import SyntheaPatientBuilder, synthea_patient

SCENARIOS = all_scenarios()
REAL_SHAPES = [s for s in SCENARIOS if s.name in OFFERS_REAL_SHAPES]
SYNTHEA = [s for s in REAL_SHAPES if isinstance(s.patient, SyntheaPatientBuilder)]


def _references(node):
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_every_item_of_why_has_its_scenarios():
    assert len(REAL_SHAPES) == len(OFFERS_REAL_SHAPES) >= 30
    assert len(SYNTHEA) >= 15


@pytest.mark.parametrize("scn", SYNTHEA, ids=[s.name for s in SYNTHEA])
def test_synthea_bundles_are_written_as_synthea_exports_them(scn):
    bundle = scn.patient.transaction()
    check_bundle(scn.name, bundle)
    full_urls = set()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        full_urls.add(entry["fullUrl"])
    internal = [
        r
        for e in bundle["entry"]
        for r in _references(e["resource"])
        if not r.startswith("Medication/")
    ]
    assert internal and all(r.startswith("urn:uuid:") for r in internal)
    assert set(internal) <= full_urls
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Encounter", "Observation"} <= kinds
    for entry in bundle["entry"]:  # every dated clinical entry belongs to a visit
        resource = entry["resource"]
        if resource["resourceType"] in (
            "Observation",
            "Condition",
            "Procedure",
            "MedicationRequest",
            "DiagnosticReport",
        ):
            assert resource["encounter"]["reference"] in full_urls


def test_synthea_shapes_of_the_items():
    by_name = {s.name: s.patient.transaction() for s in SYNTHEA}
    text = json.dumps(by_name)
    for code in (
        '"49765-1"',
        '"38483-4"',
        '"33914-3"',
        '"21908-9"',
        '"21907-1"',
        '"258228008"',
        '"265764009"',
        '"46177005"',
        '"38265-5"',
        '"medicationReference"',
    ):
        assert code in text, code
    egfr = [
        e["resource"]
        for e in by_name["egfr-22-ml-min-synthea"]["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "33914-3"
    ]
    assert egfr[0]["valueQuantity"]["unit"] == "mL/min"
    medications = [e["resource"] for e in by_name["anastrozole-by-reference-dxa-missing"]["entry"]]
    order = next(
        r
        for r in medications
        if r["resourceType"] == "MedicationRequest" and "medicationReference" in r
    )
    medication = next(r for r in medications if r["resourceType"] == "Medication")
    assert order["medicationReference"]["reference"] == f"urn:uuid:{medication['id']}"
    assert medication["code"]["coding"][0]["code"] == "199224"


def test_loader_accepts_synthea_bundles_and_turns_them_into_upserts():
    bundle = scenario("esrd-synthea-renal-dialysis-procedures").patient.transaction()
    upserts = as_upserts(bundle)
    assert bundle["entry"][0]["request"]["method"] == "POST"  # the original is left alone
    for sent, original in zip(upserts["entry"], bundle["entry"], strict=True):
        resource = original["resource"]
        assert sent["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }
        # urn:uuid refs kept
        assert sent["fullUrl"] == original["fullUrl"] and sent["resource"] == resource
    check_bundle("upserts", upserts)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda b: b["entry"][1].update(fullUrl="urn:uuid:not-this-entry"),
            "name no entry|must be PUT",
        ),
        (
            lambda b: b["entry"][1]["resource"].update(subject={"reference": "urn:uuid:nobody"}),
            "name no entry",
        ),
        (lambda b: b["entry"][1]["request"].update(url="Observation/x"), "must be PUT"),
    ],
)
def test_loader_refuses_broken_synthea_bundles(change, message):
    bundle = json.loads(
        json.dumps(scenario("stage-iv-observation-metastatic-other").patient.transaction())
    )
    change(bundle)
    with pytest.raises(FixtureLoadError, match=message):
        check_bundle("x", bundle)


def test_assigned_ids_read_absolute_and_relative_locations():
    sent = {
        "entry": [
            {"fullUrl": "urn:uuid:a"},
            {"fullUrl": "urn:uuid:b"},
            {"request": {"url": "Patient/p-1"}},
        ]
    }
    answer = {
        "entry": [
            {"response": {"location": "http://h/fhir/Patient/123/_history/1"}},
            {"response": {"location": "Observation/abc/_history/2"}},
            {"response": {"location": "Patient/p-1"}},
        ]
    }
    assert assigned_ids(sent, answer) == {
        "urn:uuid:a": "Patient/123",
        "urn:uuid:b": "Observation/abc",
        "Patient/p-1": "Patient/p-1",
    }


@pytest.mark.parametrize("scn", SYNTHEA, ids=[s.name for s in SYNTHEA])
def test_prefetch_emulator_resolves_urn_uuid_references_as_the_server_stores_them(scn):
    resources = transaction_resources(scn.patient.transaction())
    assert "urn:uuid:" not in json.dumps(resources)
    subjects = {r["subject"]["reference"] for r in resources if "subject" in r}
    assert subjects == {f"Patient/{scn.patient_id}"}


def test_only_the_paging_scenario_has_a_next_link(frozen_order_sign_app):
    services = frozen_order_sign_app.extensions["bonecds"].services
    paged = {}
    for scn in SCENARIOS:
        context = {
            "userId": "Practitioner/x",
            "patientId": scn.patient_id,
            "draftOrders": scn.draft_orders,
        }
        prefetch = build_prefetch(
            services[scn.service_id], context, transaction_resources(scn.patient.transaction())
        )
        for key, answer in prefetch.items():
            if isinstance(answer, dict) and answer.get("link"):
                paged[(scn.name, key)] = answer
    assert list(paged) == [("prefetch-next-link-first-page", "weight")]
    weights = paged[("prefetch-next-link-first-page", "weight")]
    assert len(weights["entry"]) == 20 and weights["total"] == 25
    assert [link["relation"] for link in weights["link"]] == ["self", "next"]


def test_sandbox_order_shape():
    order = sandbox_medication_request("p-1", "alendronate-70mg-tablet")
    bundle = draft_orders(order)
    assert "type" not in bundle
    assert isinstance(order["category"], dict)
    assert order["authoredOn"] == "2026-10-15"
    dosage = order["dosageInstruction"][0]
    assert "route" not in dosage
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 1,
        "system": "http://unitsofmeasure.org",
        "code": "{pill}",
    }
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "d"}
    assert order["medicationCodeableConcept"]["coding"][0]["code"] == "904431"


def test_synthea_patient_identity_is_stable_and_unique():
    one = synthea_patient("k-1", age=60, given="A1", family="B1")
    again = synthea_patient("k-1", age=60, given="A1", family="B1")
    assert one.patient_id == again.patient_id and one.patient() == again.patient()
    assert synthea_patient("k-2", age=60, given="A1", family="B1").patient_id != one.patient_id
    patients = [s.patient.patient() for s in SCENARIOS]
    for field in ("birthDate",):
        values = [
            p[field]
            for p, s in zip(patients, SCENARIOS, strict=True)
            if field in p and s in REAL_SHAPES
        ]
        assert len(values) == len(set(values))


# --- what the cards say (full prefetch, through HTTP) ---------------------------------------------


def _cards(app, name: str) -> list[dict]:
    scn = scenario(name)
    service = app.extensions["bonecds"].services[scn.service_id]
    body = scenario_request(
        service, scn, resources=transaction_resources(scn.patient.transaction())
    )
    response = app.test_client().post(f"/cds-services/{scn.service_id}", json=body)
    assert response.status_code == 200
    return response.get_json()["cards"]


def _text(card: dict) -> str:
    return f"{card['summary']}\n{card.get('detail', '')}"


def test_a_coded_sandbox_order_never_carries_no_code(frozen_order_sign_app):
    for name in (
        "sandbox-alendronate-70mg-1-pill-daily",
        "ibandronate-2.5mg-tablet-no-route",
        "ibandronate-3mg-syringe-no-route-judged-iv",
    ):
        for card in _cards(frozen_order_sign_app, name):
            assert not re.search(r"no (RxNorm|ATC)|carries no", _text(card)), (
                name,
                card["summary"],
            )


def test_forearm_t_score_is_named_as_seen_not_used(frozen_order_sign_app):
    [card] = _cards(frozen_order_sign_app, "forearm-t-score-only")
    assert "forearm" in card["detail"].lower() and "not used" in card["detail"]


@pytest.mark.parametrize(
    "name", ["esrd-n18-6-on-hemodialysis", "esrd-synthea-renal-dialysis-procedures"]
)
def test_dialysis_is_named_and_no_cockcroft_gault_value_is_the_basis(frozen_order_sign_app, name):
    [card] = _cards(frozen_order_sign_app, name)
    assert "dialysis" in _text(card).lower()
    assert not re.search(r"CrCl \d", _text(card))


@pytest.mark.parametrize(
    "name, missing",
    [("no-sex-recorded-no-crcl", "sex"), ("no-birth-date-recorded-no-crcl", "birth")],
)
def test_no_clearance_is_guessed_without_sex_or_birth_date(frozen_order_sign_app, name, missing):
    [card] = _cards(frozen_order_sign_app, name)
    assert missing in card["detail"].lower()
    assert not re.search(r"CrCl \d|\d mL/min(?!/)", _text(card))


def test_nothing_sent_counts_as_not_retrieved(frozen_order_sign_app):
    for scn in REAL_SHAPES:
        for card in _cards(frozen_order_sign_app, scn.name):
            assert "could not be retrieved" not in _text(card), (scn.name, card["summary"])
