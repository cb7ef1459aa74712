"""Invasive dental work through the whole HTTP path (clock frozen at the anchor): ServiceRequests
still planned (on the record or drafted with the dose), Procedures in preparation, and Procedures
done within 8 weeks, coded CDT D7000-D7999, D6010 or SNOMED tooth extraction; read from prefetch
and from the FHIR server.

Every test starts from a prepared patient whose order gets no card and adds one thing.
"""

from __future__ import annotations

from urllib.parse import unquote

import orjson
import pytest

from fixtures.builder import CDT, SNOMED, PatientBuilder, draft_orders, service_request
from fixtures.prefetch import answer_template, hook_request, transaction_resources
from service.record.fhir_client import FhirFetcher
from tests.support.answering_server import AnsweringServer, Asked, Reply
from tests.support.order_sign_http import (
    denosumab_order,
    metastatic,
    new_patient,
    order,
    prepared,
    rules,
)

RULE = "invasive-dental-work"


def patient() -> PatientBuilder:
    return prepared(metastatic(new_patient("dental-work")))


def recode(p: PatientBuilder, system: str, code: str, display: str) -> None:
    p.resources[-1]["code"] = {
        "coding": [{"system": system, "code": code, "display": display}],
        "text": display,
    }


@pytest.mark.parametrize("days, fires", [(56, True), (57, False)], ids=["8-weeks", "8-weeks-1-day"])
def test_a_completed_extraction_counts_for_8_weeks(post, days, fires):
    p = patient()
    p.dental_procedure("tooth-extraction", days)
    found = rules(post(p, order(p)))
    assert list(found) == ([RULE] if fires else [])
    if fires:
        card = found[RULE]
        assert card["indicator"] == "warning"
        assert card["summary"] == (
            "Extraction, erupted tooth or exposed root on 2026-08-20: finish dental work and let"
            " it heal before zoledronic acid"
        )
        assert (
            "- Extraction, erupted tooth or exposed root: completed on 2026-08-20."
            in (card["detail"])
        )
        assert "suggestions" not in card  # a link, no order


@pytest.mark.parametrize(
    "status, fires",
    [
        ("in-progress", True),
        ("preparation", True),
        ("not-done", False),
        ("entered-in-error", False),
    ],
)
def test_procedure_status(post, status, fires):
    p = patient()
    p.dental_procedure("surgical-extraction", 100 if status == "preparation" else 3, status=status)
    if status == "preparation":
        del p.resources[-1]["performedDateTime"]  # planned: no date yet
    found = rules(post(p, order(p)))
    assert (RULE in found) is fires
    if status == "preparation":
        assert "Surgical removal of erupted tooth: in preparation." in found[RULE]["detail"]
        assert found[RULE]["summary"].startswith("Surgical removal of erupted tooth planned:")


@pytest.mark.parametrize(
    "status, fires",
    [
        ("draft", True),
        ("active", True),
        ("on-hold", True),
        ("completed", False),
        ("revoked", False),
    ],
)
def test_service_request_still_planned(post, status, fires):
    p = patient()
    p.service_request("surgical-extraction", 5, status=status, planned_in_days=10)
    found = rules(post(p, order(p)))
    assert (RULE in found) is fires
    if fires:
        assert f"ordered ({status}), planned for 2026-10-25" in found[RULE]["detail"]


def test_a_draft_service_request_in_the_same_order_sign_counts(post):
    p = patient()
    implant = service_request(f"{p.patient_id}-implant", p.patient_id, "implant-placement")
    card = rules(post(p, order(p), implant))[RULE]
    assert (
        "Surgical placement of implant body: endosteal implant: ordered (draft)" in card["detail"]
    )


@pytest.mark.parametrize(
    "system, code, fires",
    [
        (CDT, "D7000", True),
        (CDT, "D7999", True),
        (CDT, "d7250", True),
        (CDT, "D6010", True),
        (CDT, "D6056", False),  # implant abutment: not surgery on the jaw
        (CDT, "D0150", False),  # the dental examination itself
        (CDT, "D8010", False),
        (SNOMED, "55162003", True),
        (SNOMED, "34043003", False),
    ],
)
def test_codes(post, system, code, fires):
    p = patient()
    p.dental_procedure("tooth-extraction", 10)
    recode(p, system, code, f"dental procedure {code}")
    assert (RULE in rules(post(p, order(p)))) is fires


def test_denosumab_too(post):
    p = patient()
    p.service_request("tooth-extraction-sct", 2, status="active")
    assert RULE in rules(post(p, denosumab_order(p)))


def test_dental_work_not_retrieved_is_named_in_the_completeness_card(post, frozen_order_sign_app):
    p = patient()
    keys = [
        k.key
        for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys
        if k.key not in ("dentalWorkRequests", "dentalWorkProcedures")
    ]
    found = rules(post(p, order(p), prefetch_keys=keys))
    assert list(found) == ["record-incomplete"]
    detail = found["record-incomplete"]["detail"]
    assert (
        "Planned and recent dental procedures (orders and procedures) could not be retrieved"
        in (detail)
    )
    assert "invasive dental work planned or recent" in detail


def test_read_from_the_fhir_server_without_prefetch(make_app):
    """No prefetch: the service searches ServiceRequest and Procedure on fhirServer (plain FHIR
    searches narrowed by patient, status and code) and finds the planned extraction."""
    p = patient()
    p.service_request("surgical-extraction", 5, status="active", planned_in_days=10)
    resources = transaction_resources(p.transaction())

    def answer(asked: Asked) -> Reply:
        query = unquote(asked.target).removeprefix("/fhir/")
        return Reply(200, orjson.dumps(answer_template(query, resources) or {}))

    with AnsweringServer(answer) as server:
        fhir = server.base_url + "/fhir"
        fetcher = FhirFetcher(timeout_seconds=2.0, budget_seconds=5.0, max_pages=3, max_parallel=2)
        app = make_app(fetcher=fetcher, fhir_allowlist=(fhir,))
        service = app.extensions["bonecds"].services["bonecds-order-sign"]
        body = hook_request(service, p.patient_id, draft_orders(order(p)), fhir_server=fhir)
        response = app.test_client().post("/cds-services/bonecds-order-sign", json=body)
    assert response.status_code == 200
    found = rules(response.get_json()["cards"])
    assert list(found) == [RULE]
    searches = [
        unquote(a.target).removeprefix("/fhir/")
        for a in server.asked
        if a.target.startswith("/fhir/ServiceRequest?")
    ]
    assert searches == [
        f"ServiceRequest?patient={p.patient_id}&status=draft,active,on-hold"
        "&code=http://www.ada.org/cdt|,http://snomed.info/sct|55162003&_sort=-authored&_count=20"
    ]


def test_an_order_without_a_planned_day_says_when_it_was_ordered_not_planned(post):
    p = patient()
    p.service_request("surgical-extraction", 5)  # authored 2026-10-10, no occurrence[x]
    card = rules(post(p, order(p)))[RULE]
    assert (
        "Surgical removal of erupted tooth: ordered (active) on 2026-10-10, no date planned yet."
        in card["detail"]
    )
    assert "planned for" not in card["detail"]
    assert card["summary"].startswith("Surgical removal of erupted tooth planned: ")


def test_an_order_planned_as_a_timing_gives_its_first_day(post):
    p = patient()
    p.service_request("surgical-extraction", 5)
    p.resources[-1]["occurrenceTiming"] = {"event": ["2026-11-02T09:00:00-05:00"]}
    card = rules(post(p, order(p)))[RULE]
    assert "ordered (active), planned for 2026-11-02." in card["detail"]
    assert card["summary"].startswith("Surgical removal of erupted tooth planned for 2026-11-02: ")


def test_a_completed_extraction_without_a_date_asks_instead_of_staying_silent(post):
    p = patient()
    p.dental_procedure("tooth-extraction", 3)
    del p.resources[-1]["performedDateTime"]
    card = rules(post(p, order(p)))[RULE]
    assert card["indicator"] == "info"
    assert card["summary"] == (
        "Extraction, erupted tooth or exposed root done, date not recorded: check it was more"
        " than 8 weeks before zoledronic acid"
    )
    assert (
        "- Extraction, erupted tooth or exposed root: completed, date not recorded."
        in (card["detail"])
    )


def test_dated_recent_work_leads_over_undated_work(post):
    p = patient()
    p.dental_procedure("tooth-extraction", 3)
    del p.resources[-1]["performedDateTime"]
    p.dental_procedure("surgical-extraction", 10)
    card = rules(post(p, order(p)))[RULE]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Surgical removal of erupted tooth on 2026-10-05: ")
    assert "completed, date not recorded." in card["detail"]
