"""MedicationReference everywhere, and paged prefetch, through the whole HTTP path (issue 13).

A draft, an order on record or an administration that names its drug by `medicationReference` is
resolved from a contained Medication, from the request's Bundles (draftOrders, prefetch `_include`),
or by reading Medication/{id} from the request's fhirServer (a real local HTTP server here:
tests/support/fhir_server/faulty.py) with the request's token, inside the call's time budget and
only when the SSRF guard allows the server. A draft whose Medication cannot be obtained gets a
`record-incomplete` card naming it (200, never 500, never an empty answer); a record Medication that
cannot be obtained marks its fact group unavailable. A prefetch with a `next` link is used as sent;
the next page is read when it can be, else the cards that rely on it say "first page of the EHR's
search only"."""

from __future__ import annotations

import copy
import time

import pytest

from fixtures.builder import ANCHOR_INSTANT, MEDICATIONS, day, draft_orders, medication_request
from fixtures.prefetch import hook_request, transaction_resources
from service import create_app
from service.config import Settings
from tests.support.fhir_server.faulty import FaultyFhirServer
from tests.support.order_sign_http import early, metastatic, new_patient, order, prepared

SERVICE_ID = "bonecds-order-sign"
URL = f"/cds-services/{SERVICE_ID}"
TOKEN = "medref-token-5c1e"
TIMEOUT, BUDGET, MARGIN = 0.5, 1.5, 0.75
UNREACHABLE = "http://127.0.0.1:9/fhir"  # allowlisted, nothing listens: connection refused
ALLOWED_NOWHERE = "https://ehr.example.org/fhir"  # allowlisted; only used where nothing may be read
FIRST_PAGE = "first page of the EHR's search only"


@pytest.fixture(scope="module")
def servers():
    """The FHIR server of the requests, and another one standing for "another host" (it must never
    be asked)."""
    with FaultyFhirServer([]) as other, FaultyFhirServer([], other_base=other.base_url) as main:
        yield main, other


@pytest.fixture(scope="module")
def medref_app(servers, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("medref")
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp}/t.db",
            frozen_now=ANCHOR_INSTANT,
            auth="off",
            fhir_allowlist=(servers[0].base_url, UNREACHABLE, ALLOWED_NOWHERE),
            fhir_timeout_seconds=TIMEOUT,
            fhir_budget_seconds=BUDGET,
        )
    )


@pytest.fixture()
def server(servers):
    """The request's FHIR server, emptied: each test gives it the resources it holds."""
    main, other = servers
    main.reset()
    other.reset()
    main.resources = []
    yield main
    assert other.requests == [], "a request went to another host"


@pytest.fixture()
def call(medref_app):
    """Call(patient, *drafts, extra=[], prefetch_keys=None, fhir_server=None, prefetch=None) ->
    (status, cards, seconds).

    The prefetch is built from the patient's resources plus `extra` (what the EHR holds) for
    `prefetch_keys` (None: all); `prefetch(body)` may change it before it is sent.
    """
    client = medref_app.test_client()
    service = medref_app.extensions["bonecds"].services[SERVICE_ID]

    def run(
        p,
        *drafts,
        extra=(),
        prefetch_keys=None,
        fhir_server=None,
        prefetch=None,
        hook_service=service,
        selections=None,
    ):
        resources = transaction_resources(p.transaction()) + list(extra)
        body = hook_request(
            hook_service,
            p.patient_id,
            draft_orders(*drafts),
            resources=resources,
            prefetch_keys=prefetch_keys,
            fhir_server=fhir_server,
            token=TOKEN if fhir_server else None,
        )
        if selections is not None:
            body["context"]["selections"] = selections
        if prefetch:
            prefetch(body)
        started = time.monotonic()
        response = client.post(f"/cds-services/{hook_service.id}", json=body)
        seconds = time.monotonic() - started
        assert response.status_code < 500, response.get_data(as_text=True)
        return response.status_code, response.get_json().get("cards"), seconds

    return run


def rule_ids(cards: list[dict]) -> list[str]:
    return sorted(card["source"]["topic"]["code"] for card in cards)


def by_rule(cards: list[dict]) -> dict[str, dict]:
    return {card["source"]["topic"]["code"]: card for card in cards}


def medication(medication_id: str, key: str) -> dict:
    """A Medication resource coded as in the builder's MEDICATIONS table."""
    system, code, display = MEDICATIONS[key]
    return {
        "resourceType": "Medication",
        "id": medication_id,
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
    }


def by_reference(resource: dict, reference: str, display: str | None = None) -> dict:
    """The same order naming its drug by medicationReference instead of
    medicationCodeableConcept."""
    changed = copy.deepcopy(resource)
    changed.pop("medicationCodeableConcept", None)
    changed["medicationReference"] = {
        "reference": reference,
        **({"display": display} if display else {}),
    }
    return changed


def za_patient():
    """Bone metastases, prepared except for renal function: a zoledronic acid order draws renal-
    data-missing."""
    return metastatic(prepared(new_patient("medref"), renal=False))


def za_draft(p, suffix: str = "draft") -> dict:
    return order(p, suffix=suffix)


def on_ai_by_reference(p, *, status: str = "active") -> tuple[dict, dict]:
    """An anastrozole order on record naming its drug by reference only (as Synthea writes it), and
    its Medication."""
    med = medication(f"{p.patient_id}-anastrozole", "anastrozole")
    request = by_reference(
        medication_request(f"{p.patient_id}-ai", p.patient_id, "anastrozole", status=status),
        f"Medication/{med['id']}",
    )
    request["authoredOn"] = day(60)
    p.resources.append(request)
    return request, med


def early_without_dxa():
    """Early breast cancer, postmenopausal by age, well prepared, no DXA on record: endocrine
    therapy draws dxa-missing."""
    return early(prepared(new_patient("medref-ai", age=64)))


def adjuvant_za(p) -> dict:
    return order(p, every=(6, "mo"))


# --- the draft's Medication: contained, in draftOrders, in the prefetch, on the FHIR server -------


def test_drug_by_code_is_the_baseline(call, server):
    p = za_patient()
    status, cards, _ = call(p, za_draft(p), fhir_server=server.base_url)
    assert status == 200 and rule_ids(cards) == ["renal-data-missing"]
    assert server.requests == []  # fully prefetched: nothing to read


def test_contained_medication(call, server):
    p = za_patient()
    draft = by_reference(za_draft(p), "#za")
    draft["contained"] = [medication("za", "zoledronic-acid-4mg")]
    status, cards, _ = call(p, draft, fhir_server=server.base_url)
    assert status == 200 and rule_ids(cards) == ["renal-data-missing"]
    assert "recognised" not in cards[0]["detail"]  # by its RxNorm code, not by name
    assert server.requests == []


def test_medication_in_draft_orders(call, server):
    p = za_patient()
    med = medication(f"{p.patient_id}-za", "zoledronic-acid-4mg")
    status, cards, _ = call(
        p, by_reference(za_draft(p), f"Medication/{med['id']}"), med, fhir_server=server.base_url
    )
    assert status == 200 and rule_ids(cards) == ["renal-data-missing"]
    assert server.requests == []


def test_medication_in_draft_orders_by_urn_uuid(call, server):
    p = za_patient()
    med = medication("7f7bb5c2-6b8f-4ab4-9d43-27c5b0b8d1e2", "zoledronic-acid-4mg")
    draft = by_reference(za_draft(p), f"urn:uuid:{med['id']}")
    status, cards, _ = call(
        p,
        draft,
        fhir_server=server.base_url,
        prefetch=lambda body: body["context"]["draftOrders"]["entry"].append(
            {"fullUrl": f"urn:uuid:{med['id']}", "resource": med}
        ),
    )
    assert status == 200 and rule_ids(cards) == ["renal-data-missing"]
    assert server.requests == []


def test_medication_included_in_the_prefetch(call, server):
    """The EHR stores the draft and answers the medications template with `_include`: the Medication
    comes along."""
    p = za_patient()
    med = medication(f"{p.patient_id}-za", "zoledronic-acid-4mg")
    draft = by_reference(za_draft(p), f"Medication/{med['id']}")
    p.resources.append(draft)  # the draft as the EHR holds it
    seen = {}

    def check(body):
        seen["entries"] = body["prefetch"]["medications"]["entry"]

    status, cards, _ = call(p, draft, extra=[med], prefetch=check)  # no fhirServer at all
    assert {
        "fullUrl": f"Medication/{med['id']}",
        "resource": med,
        "search": {"mode": "include"},
    } in seen["entries"]
    assert status == 200 and rule_ids(cards) == ["renal-data-missing"]


def test_medication_only_on_the_fhir_server_is_read_once_with_the_token(call, server):
    p = za_patient()
    med = medication(f"{p.patient_id}-za", "zoledronic-acid-4mg")
    server.resources = [med]
    # the same, absolute
    drafts = [
        by_reference(za_draft(p), f"Medication/{med['id']}"),
        by_reference(za_draft(p, "second"), f"{server.base_url}/Medication/{med['id']}"),
    ]
    status, cards, _ = call(p, *drafts, fhir_server=server.base_url)
    assert status == 200
    assert [(seen.path, seen.query, seen.authorized) for seen in server.requests] == [
        (f"/fhir/Medication/{med['id']}", "", True)
    ]
    found = by_rule(cards)
    # two zoledronic acid drafts, both seen
    assert "renal-data-missing" in found and "duplicate-bone-agent" in found


def test_absolute_reference_to_another_server_is_not_read(call, server, servers):
    p = za_patient()
    other = servers[1]
    draft = by_reference(za_draft(p), f"{other.base_url}/Medication/za-1")
    status, cards, _ = call(p, draft, fhir_server=server.base_url)
    assert status == 200 and rule_ids(cards) == ["record-incomplete"]
    assert "another FHIR server" in cards[0]["detail"]
    assert server.requests == []  # and the other host was asked nothing (fixture)


# --- a draft's Medication that cannot be obtained -------------------------------------------------

UNRESOLVED = {  # how the request is sent -> what the card gives as the reason
    "no-server": (None, {}, "the request gave no FHIR server"),
    "refused": ("https://evil.example.com/fhir", {}, "not on the allowlist"),
    "unreachable": (UNREACHABLE, {}, "FHIR server unreachable"),
    "not-found": ("main", {}, "the FHIR server has no Medication/"),
    "http500": ("main", {"Medication": "http500"}, "HTTP 500"),
    "timeout": ("main", {"Medication": "hang"}, "timed out"),
}


@pytest.mark.parametrize("case", UNRESOLVED)
def test_unobtainable_draft_medication_is_named_in_a_record_incomplete_card(call, server, case):
    fhir_server, faults, reason = UNRESOLVED[case]
    server.reset(faults)
    p = za_patient()
    draft = by_reference(
        medication_request(f"{p.patient_id}-mystery", p.patient_id, "calcium-carbonate"),
        f"Medication/{p.patient_id}-unknown",
    )
    status, cards, seconds = call(
        p, draft, fhir_server=server.base_url if fhir_server == "main" else fhir_server
    )
    assert status == 200 and rule_ids(cards) == ["record-incomplete"]
    [card] = cards
    assert card["indicator"] == "warning"
    assert (
        card["summary"] == "Draft order's medication could not be read: bone-agent checks not done"
    )
    assert (
        f"MedicationRequest/{p.patient_id}-mystery" in card["detail"] and reason in card["detail"]
    ), card["detail"]
    assert seconds < BUDGET + MARGIN
    # one read of that Medication and nothing else (no record was gathered)
    if fhir_server == "main":
        assert [(seen.path, seen.authorized) for seen in server.requests] == [
            (f"/fhir/Medication/{p.patient_id}-unknown", True)
        ]


def test_missing_contained_medication_is_named(call, server):
    p = za_patient()
    draft = by_reference(za_draft(p), "#nowhere")
    status, cards, _ = call(p, draft, fhir_server=server.base_url)
    assert status == 200 and rule_ids(cards) == ["record-incomplete"]
    assert "contains no Medication" in cards[0]["detail"] and server.requests == []


def test_unobtainable_draft_next_to_a_bone_agent_draft(call, server):
    """The bone-agent draft is checked as usual; the other one is named on its own card."""
    p = za_patient()
    unknown = by_reference(
        medication_request(f"{p.patient_id}-other", p.patient_id, "calcium-carbonate"),
        f"Medication/{p.patient_id}-gone",
    )
    status, cards, _ = call(p, za_draft(p), unknown, fhir_server=server.base_url)
    assert status == 200 and rule_ids(cards) == ["record-incomplete", "renal-data-missing"]
    gap = by_rule(cards)["record-incomplete"]
    assert (
        f"MedicationRequest/{p.patient_id}-other" in gap["detail"] and "duplicates" in gap["detail"]
    )


def test_recognised_by_its_display_only(call, server):
    """The Medication is missing but the reference's display names the drug: checked by name, and
    the card says the Medication could not be read."""
    p = za_patient()
    draft = by_reference(
        za_draft(p), f"Medication/{p.patient_id}-gone", display="zoledronic acid 4 MG Injection"
    )
    status, cards, _ = call(p, draft, fhir_server=server.base_url)
    found = by_rule(cards)
    assert status == 200 and set(found) == {"record-incomplete", "renal-data-missing"}
    assert found["record-incomplete"]["summary"].startswith(
        "Medication of the zoledronic acid draft could not be read"
    )


def test_order_select_names_only_selected_drafts(call, server, medref_app):
    select = medref_app.extensions["bonecds"].services["bonecds-order-select"]
    p = za_patient()
    unknown = by_reference(
        medication_request(f"{p.patient_id}-other", p.patient_id, "calcium-carbonate"),
        f"Medication/{p.patient_id}-gone",
    )
    status, cards, _ = call(
        p, unknown, hook_service=select, selections=[f"MedicationRequest/{p.patient_id}-calcium"]
    )
    assert (status, cards) == (200, [])
    status, cards, _ = call(
        p, unknown, hook_service=select, selections=[f"MedicationRequest/{p.patient_id}-other"]
    )
    assert status == 200 and rule_ids(cards) == ["record-incomplete"]


# --- nothing is read for an order-sign without a bone agent ---------------------------------------


def test_no_bone_agent_and_no_reference_reads_nothing(call, server):
    p = za_patient()
    status, cards, _ = call(
        p,
        medication_request(f"{p.patient_id}-ca", p.patient_id, "calcium-carbonate"),
        prefetch_keys=[],
        fhir_server=server.base_url,
    )
    assert (status, cards) == (200, []) and server.requests == []


def test_no_bone_agent_by_reference_reads_only_that_medication(call, server):
    p = za_patient()
    med = medication(f"{p.patient_id}-ca-med", "calcium-carbonate")
    server.resources = [med]
    draft = by_reference(
        medication_request(f"{p.patient_id}-ca", p.patient_id, "calcium-carbonate"),
        f"Medication/{med['id']}",
    )
    status, cards, _ = call(p, draft, prefetch_keys=[], fhir_server=server.base_url)
    assert (status, cards) == (200, [])
    assert [seen.path for seen in server.requests] == [f"/fhir/Medication/{med['id']}"]


# --- medications on record by reference -----------------------------------------------------------


def test_aromatase_inhibitor_by_code_is_the_baseline(call, server):
    p = early_without_dxa()
    status, cards, _ = call(p, adjuvant_za(p))
    assert status == 200 and "dxa-missing" not in by_rule(cards)
    p.medication("anastrozole", 60, status="active")
    status, cards, _ = call(p, adjuvant_za(p))
    assert "- Endocrine therapy: anastrozole (active" in by_rule(cards)["dxa-missing"]["detail"]


def test_aromatase_inhibitor_by_reference_included_in_the_prefetch(call, server):
    p = early_without_dxa()
    _, med = on_ai_by_reference(p)
    # the prefetch _includes it; no fhirServer
    status, cards, _ = call(p, adjuvant_za(p), extra=[med])
    found = by_rule(cards)
    assert status == 200 and "record-incomplete" not in found
    assert "- Endocrine therapy: anastrozole" in found["dxa-missing"]["detail"]


def test_aromatase_inhibitor_by_reference_read_from_the_server(call, server):
    p = early_without_dxa()
    _, med = on_ai_by_reference(p)
    server.resources = [med]
    # prefetch without the Medication
    status, cards, _ = call(p, adjuvant_za(p), fhir_server=server.base_url)
    found = by_rule(cards)
    assert status == 200 and "record-incomplete" not in found
    assert "- Endocrine therapy: anastrozole" in found["dxa-missing"]["detail"]
    assert [(seen.path, seen.authorized) for seen in server.requests] == [
        (f"/fhir/Medication/{med['id']}", True)
    ]


def test_aromatase_inhibitor_by_reference_without_the_medication_is_not_silent(call, server):
    p = early_without_dxa()
    on_ai_by_reference(p)
    status, cards, _ = call(p, adjuvant_za(p))  # not in the prefetch, no server to read it from
    found = by_rule(cards)
    assert status == 200 and "dxa-missing" not in found
    detail = found["record-incomplete"]["detail"]
    assert (
        "Medication orders could not be retrieved (1 medication order names its drug by a reference"
        " to a Medication that could not be read: it was not in the request, and the request gave"
        " no FHIR server" in detail
    )
    assert "baseline bone density" in detail.lower() or "dxa" in detail.lower()


def test_record_medications_by_reference_are_read_once_each(call, server):
    """Two orders and an administration naming the same Medication: one read."""
    p = early_without_dxa()
    request, med = on_ai_by_reference(p)
    second = dict(request, id=f"{p.patient_id}-ai-2")
    p.resources.append(second)
    p.resources.append(
        {
            "resourceType": "MedicationAdministration",
            "id": f"{p.patient_id}-ai-adm",
            "status": "completed",
            "medicationReference": {"reference": f"Medication/{med['id']}"},
            "subject": {"reference": p.reference},
            "effectiveDateTime": day(30),
        }
    )
    server.resources = [med]
    status, cards, _ = call(p, adjuvant_za(p), fhir_server=server.base_url)
    assert status == 200 and "dxa-missing" in by_rule(cards)
    assert [seen.path for seen in server.requests] == [f"/fhir/Medication/{med['id']}"]


def test_one_time_budget_for_the_whole_call(server, tmp_path):
    """A hanging Medication read for the draft uses up the call's budget: the record's Medication
    read that follows gets none of its own, so the call ends within one budget (1 s), not one per
    phase (2 s)."""
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/t.db",
            frozen_now=ANCHOR_INSTANT,
            auth="off",
            fhir_allowlist=(server.base_url,),
            fhir_timeout_seconds=1.0,
            fhir_budget_seconds=1.0,
        )
    )
    service = app.extensions["bonecds"].services[SERVICE_ID]
    server.reset({"Medication": "hang"})
    p = early_without_dxa()
    on_ai_by_reference(p)
    drafts = [
        adjuvant_za(p),
        by_reference(
            medication_request(f"{p.patient_id}-x", p.patient_id, "calcium-carbonate"),
            f"Medication/{p.patient_id}-hangs",
        ),
    ]
    body = hook_request(
        service,
        p.patient_id,
        draft_orders(*drafts),
        resources=transaction_resources(p.transaction()),
        fhir_server=server.base_url,
        token=TOKEN,
    )
    started = time.monotonic()
    response = app.test_client().post(URL, json=body)
    seconds = time.monotonic() - started
    assert response.status_code == 200 and seconds < 1.0 + 0.5, seconds
    details = "".join(card["detail"] for card in response.get_json()["cards"])
    assert f"MedicationRequest/{p.patient_id}-x" in details
    assert (
        "Medication orders could not be retrieved" in details
        and "no answer within the 1 s budget" in details
    )
    # never started
    assert [seen.path for seen in server.requests] == [f"/fhir/Medication/{p.patient_id}-hangs"]


# --- paged prefetch -------------------------------------------------------------------------------


def _paged(key: str, url: str, keep_entries: bool = True):
    def change(body):
        bundle = body["prefetch"][key]
        if not keep_entries:
            bundle["entry"] = []
        bundle["link"] = [
            {"relation": "self", "url": "https://ehr.example.org/fhir/MedicationRequest"},
            {"relation": "next", "url": url},
        ]

    return change


def test_paged_prefetch_without_a_server_is_used_and_said_to_be_first_page_only(call, server):
    p = early_without_dxa()
    p.medication("anastrozole", 60, status="active")
    status, cards, _ = call(
        p,
        adjuvant_za(p),
        prefetch=_paged(
            "medications",
            f"https://ehr.example.org/fhir/MedicationRequest?patient={p.patient_id}&page=2",
        ),
    )
    found = by_rule(cards)
    assert status == 200 and "record-incomplete" not in found
    detail = found["dxa-missing"]["detail"]
    assert "- Endocrine therapy: anastrozole" in detail and FIRST_PAGE in detail
    assert "the request gave no FHIR server to read the next page from" in detail
    assert not any("could not be retrieved" in card["detail"] for card in cards)


def test_paged_prefetch_with_an_allowed_server_follows_next(call, server):
    p = early_without_dxa()
    p.medication("anastrozole", 60, status="active")
    server.resources = transaction_resources(p.transaction())
    query = f"MedicationRequest?patient={p.patient_id}&_sort=-authoredon&_count=100"
    status, cards, _ = call(
        p,
        adjuvant_za(p),
        fhir_server=server.base_url,
        prefetch=_paged("medications", f"{server.base_url}/{query}", keep_entries=False),
    )
    found = by_rule(cards)
    # from page 2
    assert status == 200 and "- Endocrine therapy: anastrozole" in found["dxa-missing"]["detail"]
    assert not any(FIRST_PAGE in card["detail"] for card in cards)
    assert [(seen.path, seen.query, seen.authorized) for seen in server.requests] == [
        ("/fhir/MedicationRequest", query.partition("?")[2], True)
    ]


def test_paged_prefetch_next_page_that_fails_is_still_first_page_only(call, server):
    p = early_without_dxa()
    p.medication("anastrozole", 60, status="active")
    server.reset({"MedicationRequest": "http503"})
    status, cards, _ = call(
        p,
        adjuvant_za(p),
        fhir_server=server.base_url,
        prefetch=_paged(
            "medications", f"{server.base_url}/MedicationRequest?patient={p.patient_id}&page=2"
        ),
    )
    found = by_rule(cards)
    assert status == 200 and "record-incomplete" not in found
    assert (
        FIRST_PAGE in found["dxa-missing"]["detail"]
        and "HTTP 503" in found["dxa-missing"]["detail"]
    )
    assert not any("could not be retrieved" in card["detail"] for card in cards)


def test_paged_prefetch_next_link_to_another_host_is_not_followed(call, server, servers):
    p = early_without_dxa()
    p.medication("anastrozole", 60, status="active")
    status, cards, _ = call(
        p,
        adjuvant_za(p),
        fhir_server=server.base_url,
        prefetch=_paged(
            "medications", f"{servers[1].base_url}/MedicationRequest?patient={p.patient_id}&page=2"
        ),
    )
    detail = by_rule(cards)["dxa-missing"]["detail"]
    assert status == 200 and FIRST_PAGE in detail and "another server" in detail
    assert server.requests == []
