"""Property-based robustness: mutated scenario records, random draft orders and hostile bodies never
get a 5xx.

Every property runs EXAMPLES examples (derandomized, so CI sees the same inputs every run); the
totals are printed in the terminal summary ("hypothesis examples run"). Besides the status code,
each 200 answer must match the CDS Hooks response schema with every suggestion resource valid in
fhir.resources R4B, and no rule may have crashed or built an invalid suggestion on the way (those
are caught inside the service and only logged, so the log is checked too).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fixtures.builder import ANCHOR_INSTANT, MEDICATIONS, ROUTES, UCUM, medication_request
from fixtures.prefetch import hook_request, prefetch_templates, transaction_resources
from fixtures.scenarios import all_scenarios
from hooks.cards import CardRenderer
from hooks.engine import evaluate_orders
from hooks.facts.build import build_facts
from hooks.fhir_read import bundle_resources
from hooks.fhir_validation import validate_fhir_resource
from hooks.knowledge import load_knowledge
from hooks.orders import find_bone_agent_orders
from hooks.rules.registry import ORDER_RULES
from hooks.services import build_services
from service import create_app
from service.config import Settings
from service.http.validation import SchemaValidators
from tests.support.summary import add_summary_line

EXAMPLES = 300  # per property; 6 properties -> 1800 examples per run
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
RUN: Counter = Counter()
SCHEMAS = SchemaValidators()
KNOWLEDGE = load_knowledge()
SERVICES = ("bonecds-order-sign", "bonecds-order-select", "bonecds-patient-view")


class _ErrorLog(logging.Handler):
    """Collects ERROR records: a crashed rule or an invalid suggestion is caught by the service, and
    only logged."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ERRORS = _ErrorLog()


def _summary_line() -> str:
    return (
        f"hypothesis examples run: {sum(RUN.values())}"
        f" ({', '.join(f'{k} {v}' for k, v in sorted(RUN.items()))}; max_examples={EXAMPLES} per"
        " property)"
    )


@pytest.fixture(scope="module", autouse=True)
def error_log(request):
    add_summary_line("hypothesis", _summary_line)
    logging.getLogger().addHandler(ERRORS)
    yield
    logging.getLogger().removeHandler(ERRORS)
    print(_summary_line())


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("property")
    return create_app(
        Settings(database_url=f"sqlite:///{tmp}/t.db", frozen_now=ANCHOR_INSTANT, auth="off")
    )


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


# --- inputs ---------------------------------------------------------------------------------------

SCENARIOS = all_scenarios()
_KNOWN_SERVICES = {s.id: s for s in build_services(KNOWLEDGE)}


def _scenario_body(s, service_id: str) -> bytes:
    service = _KNOWN_SERVICES[service_id]
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders or {"resourceType": "Bundle", "entry": []},
        resources=transaction_resources(s.patient.transaction()),
    )
    if service_id == "bonecds-patient-view":
        body["context"].pop("draftOrders")
    if service_id == "bonecds-order-select":
        body["context"]["selections"] = (
            list(s.selections)
            or [f"MedicationRequest/{r['id']}" for r in bundle_resources(s.draft_orders)]
            or ["MedicationRequest/none"]
        )
    return orjson.dumps(body)


BODIES = [(sid, _scenario_body(s, sid)) for s in SCENARIOS for sid in SERVICES]
BODY_NAMES = [f"{s.name} on {sid}" for s in SCENARIOS for sid in SERVICES]
RECORDS = [transaction_resources(s.patient.transaction()) for s in SCENARIOS]


def _leaves(value: Any, pool: dict[str, list], key: str = "") -> None:
    stack = [(key, value)]
    while stack:
        key, value = stack.pop()
        if key and len(pool.setdefault(key, [])) < 60 and value not in pool[key]:
            pool[key].append(value)
        if isinstance(value, dict):
            stack.extend(value.items())
        elif isinstance(value, list):
            stack.extend((key, item) for item in value)


BORROW: dict[
    str, list
] = {}  # every value seen under a field name in the scenarios: codes, units, statuses, concepts
for _resources in RECORDS:
    _leaves(_resources, BORROW)

ODD_STRINGS = [
    "",
    " ",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e309",
    "-0",
    "0x1F",
    "4 mg",
    "null",
    "true",
    "١٢٣",
    "\u202e4",
    "𝟜",
    "mg/dL\x00",
    "ｍｇ",
    "2026-02-30",
    "2026-13-01",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0000",
    "2026-10-15T25:00:00Z",
    "20261015",
    "2026-10",
    "2026",
    "-2026",
    "+12026-01-01",
    "2026-W42",
    "9999-12-31",
    "0001-01-01",
    "0001",
    "9999",
    "2026-10-15T10:00:00",
    "Patient/",
    "#",
    "Medication/",
    "#missing",
    "http://x/Medication/1/_history/2",
]
DATES = st.builds(
    lambda d, tz: d.isoformat() + tz,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    st.sampled_from(["", "Z", "+14:00", "-12:00", "+00:00"]),
) | st.builds(
    lambda days: (ANCHOR_INSTANT - timedelta(days=days)).isoformat(), st.integers(-4000, 40000)
)
NUMBERS = (
    st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([0, -1, 2**53 + 1, 10**30, -(10**30)])
    | st.floats(allow_nan=False, allow_infinity=False)
)
SCALARS = (
    st.none()
    | st.booleans()
    | NUMBERS
    | st.sampled_from(ODD_STRINGS)
    | st.text(max_size=12)
    | DATES
)
ODD = st.one_of(
    SCALARS,
    st.just({}),
    st.just([]),
    st.dictionaries(
        st.sampled_from(["value", "code", "system", "unit", "coding", "text", "reference"]),
        SCALARS,
        max_size=3,
    ),
    st.lists(SCALARS, max_size=3),
)


def _paths(document: Any) -> list[tuple]:
    paths, stack = [], [((), document)]
    while stack:
        path, value = stack.pop()
        if path:
            paths.append(path)
        items = (
            value.items()
            if isinstance(value, dict)
            else enumerate(value)
            if isinstance(value, list)
            else ()
        )
        stack.extend((path + (k,), v) for k, v in items)
    paths.sort(key=repr)  # a stable order, so derandomized runs draw the same paths
    return paths


def _mutate(data, document: Any, in_resources: list[tuple]) -> None:
    """1-5 mutations at random places (mostly inside resources): drop, replace, wrap, unwrap or
    borrow a value."""
    for _ in range(data.draw(st.integers(1, 5), label="mutations")):
        paths = [
            p for p in _paths(document) if any(p[: len(root)] == root for root in in_resources)
        ]
        if data.draw(st.integers(0, 4)) == 0 or not paths:
            paths = _paths(document)
        if not paths:
            return
        path = data.draw(st.sampled_from(paths), label="path")
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last, current = path[-1], parent[path[-1]]
        operation = data.draw(
            st.sampled_from(["drop", "odd", "odd", "wrap", "unwrap", "borrow", "borrow"])
        )
        if operation == "drop":
            del parent[last]
        elif operation == "odd":
            parent[last] = data.draw(ODD, label="value")
        elif operation == "wrap":
            parent[last] = [current]
        elif operation == "unwrap":
            parent[last] = current[0] if isinstance(current, list) and current else current
        else:
            key = (
                last
                if isinstance(last, str)
                else next((s for s in reversed(path) if isinstance(s, str)), "")
            )
            if BORROW.get(key):
                parent[last] = json.loads(
                    json.dumps(data.draw(st.sampled_from(BORROW[key]), label="borrowed"))
                )


# --- checks ---------------------------------------------------------------------------------------


def check_answer(response, statuses=(200, 400, 412), sent: Any = None) -> dict:
    """Never a 5xx; 200 is a schema-valid CDS Hooks answer with R4B-valid suggestion resources;
    errors are outcomes.

    No rule may crash and no suggestion the service builds may be invalid (an invalid client draft
    is only a warning).
    """
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text
    assert response.status_code in statuses, text
    assert response.mimetype == "application/json"
    body = orjson.loads(response.get_data())
    if response.status_code == 200:
        SCHEMAS.validate("cds-response", body)
        for card in body["cards"]:
            assert card["source"]["topic"]["code"] != "rule-error", card["summary"]
            for suggestion in card.get("suggestions", []):
                for action in suggestion["actions"]:
                    if "resource" in action:
                        validate_fhir_resource(action["resource"])
    else:
        SCHEMAS.validate("operation-outcome", body)
    # an invalid client draft is only a warning, never an error
    errors = [r.getMessage() for r in ERRORS.records]
    assert not errors, errors
    return body


def post(client, service_id: str, body: Any):
    ERRORS.records.clear()
    return client.post(
        f"/cds-services/{service_id}", data=json.dumps(body), content_type="application/json"
    )


# --- properties through HTTP ----------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_mutated_scenario_records_never_break_the_service(client, data):
    index = data.draw(st.integers(0, len(BODIES) - 1), label="scenario")
    note(BODY_NAMES[index])
    service_id, body = BODIES[index][0], orjson.loads(BODIES[index][1])
    roots = [("prefetch", key) for key in body.get("prefetch", {})] + [("context", "draftOrders")]
    _mutate(data, body, roots)
    check_answer(post(client, service_id, body), sent=body)
    RUN["mutated-records"] += 1


FHIR_ID = st.from_regex(r"\A[A-Za-z0-9\-.]{1,20}\Z")
PRODUCTS = sorted(MEDICATIONS)
REASONABLE_DOSE = st.sampled_from([0, 0.5, 3, 3.5, 4, 5, 35, 60, 70, 90, 120, 150, 1600, 4000])


def _concept(key: str, how: str) -> dict:
    system, code, display = MEDICATIONS[key]
    if how == "text":
        return {"text": display}
    if how == "bare-coding":
        return {"system": system, "code": code}
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


@st.composite
def draft_order(draw, index: int) -> tuple[dict, list[dict]]:
    """A draft MedicationRequest in one of the shapes EHRs send, with realistic or odd dosage, plus
    bundled Medications."""
    key = draw(st.sampled_from(PRODUCTS))
    order = medication_request(
        draw(FHIR_ID) + f"-{index}",
        "placeholder",
        key,
        dose_mg=draw(st.none() | REASONABLE_DOSE | NUMBERS),
        route=draw(st.none() | st.sampled_from(sorted(ROUTES))),
        every=draw(
            st.none()
            | st.tuples(
                st.sampled_from([1, 3, 4, 5, 6, 12, 0, -1, 0.5]) | NUMBERS,
                st.sampled_from(["d", "wk", "mo", "a", "h", "min", "s", "x", ""]),
            )
        ),
        infusion_minutes=draw(st.none() | st.sampled_from([5, 15, 120, 0]) | NUMBERS),
    )
    extra: list[dict] = []
    shape = draw(
        st.sampled_from(
            ["concept", "text", "bare-coding", "contained", "bundled", "dangling", "both", "none"]
        )
    )
    how = draw(st.sampled_from(["coding", "text", "bare-coding"]))
    if shape in ("text", "bare-coding"):
        order["medicationCodeableConcept"] = _concept(key, shape)
    elif shape in ("contained", "bundled", "dangling", "both"):
        medication = {"resourceType": "Medication", "id": "med", "code": _concept(key, how)}
        if draw(st.booleans()):
            medication["ingredient"] = [
                {
                    "itemCodeableConcept": _concept(draw(st.sampled_from(PRODUCTS)), how),
                    "strength": {
                        "numerator": {
                            "value": draw(REASONABLE_DOSE | NUMBERS),
                            "unit": "mg",
                            "system": UCUM,
                            "code": draw(st.sampled_from(["mg", "g", "mL", "ug"])),
                        },
                        "denominator": draw(
                            st.sampled_from([{"value": 1, "unit": "vial"}, {}, None])
                        ),
                    },
                }
            ]
        if shape != "both":
            order.pop("medicationCodeableConcept")
        if shape in ("contained", "both"):
            order["contained"] = [medication]
            order["medicationReference"] = {"reference": "#med"}
        elif shape == "bundled":
            medication["id"] = f"med-{index}"
            extra.append(medication)
            order["medicationReference"] = {
                "reference": draw(
                    st.sampled_from(
                        [f"Medication/med-{index}", f"med-{index}", f"urn:uuid:med-{index}"]
                    )
                )
            }
        else:
            order["medicationReference"] = {
                "reference": draw(st.sampled_from(["#nope", "Medication/nope", "", "#"]))
            }
    elif shape == "none":
        order.pop("medicationCodeableConcept")
    order["status"] = draw(
        st.sampled_from(
            ["draft", "active", "on-hold", "cancelled", "entered-in-error", "", "DRAFT"]
        )
    )
    if draw(st.booleans()) and order.get("dosageInstruction"):
        order["dosageInstruction"] = order["dosageInstruction"][0]  # an object where a list belongs
    return order, extra


@PROPERTY
@given(data=st.data(), service_id=st.sampled_from(SERVICES[:2]))
def test_random_draft_orders_never_break_order_services(client, data, service_id):
    index = data.draw(
        st.sampled_from([i for i, b in enumerate(BODIES) if b[0] == service_id]), label="patient"
    )
    note(BODY_NAMES[index])
    body = orjson.loads(BODIES[index][1])
    drafts = data.draw(
        st.lists(st.builds(lambda i: i, st.integers(0, 99)), min_size=1, max_size=3, unique=True)
    )
    entries: list[dict] = []
    for i in drafts:
        order, extra = data.draw(draft_order(i))
        order["subject"] = {"reference": f"Patient/{body['context']['patientId']}"}
        entries += [{"resource": order}] + [{"resource": m} for m in extra]
    if data.draw(st.booleans()):  # calcium drafted alongside
        entries.append(
            {
                "resource": medication_request(
                    "companion-calcium",
                    body["context"]["patientId"],
                    "calcium-vitamin-d",
                    route="oral",
                    every=(1, "d"),
                )
            }
        )
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": entries}
    if service_id == "bonecds-order-select":
        body["context"]["selections"] = [
            f"MedicationRequest/{e['resource']['id']}"
            for e in entries
            if e["resource"]["resourceType"] == "MedicationRequest"
        ]
    if data.draw(st.integers(0, 3)) == 0:
        _mutate(data, body, [("context", "draftOrders")])
    check_answer(post(client, service_id, body), sent=body)
    RUN["random-drafts"] += 1


# --- properties on facts and rules directly -------------------------------------------------------

TEMPLATES: dict[str, list[dict]] = {}
for _resources in RECORDS:
    for _r in _resources:
        TEMPLATES.setdefault(_r["resourceType"], []).append(_r)
EXTRA_FIELDS = {
    "Observation": [
        "valueString",
        "valueInteger",
        "component",
        "effectivePeriod",
        "issued",
        "valueRange",
        "effectiveInstant",
        "dataAbsentReason",
    ],
    "Condition": ["abatementDateTime", "onsetPeriod", "onsetString", "recordedDate", "bodySite"],
    "MedicationRequest": ["dispenseRequest", "medicationReference", "contained", "reasonCode"],
    "MedicationAdministration": ["effectivePeriod", "dosage", "medicationReference"],
    "Procedure": ["performedPeriod", "performedString", "bodySite"],
    "Encounter": ["period", "reasonCode", "type"],
    "Patient": ["deceasedBoolean", "birthDate", "gender"],
    "AllergyIntolerance": ["reaction", "onsetDateTime", "category"],
}
GROUPS = sorted({g for k in prefetch_templates() for g in k.provides} | {"patient"})


@st.composite
def random_resource(draw) -> dict:
    """A resource assembled field by field from the scenarios' resources of one type, with odd
    values mixed in."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    # resourceType stays a string: the record gatherer only passes resources with one
    # (bundle_resources, _prefetched)
    fields = sorted(
        ({f for r in TEMPLATES[kind] for f in r} | set(EXTRA_FIELDS.get(kind, ())))
        - {"resourceType"}
    )
    resource: dict[str, Any] = {"resourceType": kind}
    for name in draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique=True)):
        seen = [r[name] for r in TEMPLATES[kind] if name in r] or BORROW.get(name, [])
        resource[name] = draw(st.sampled_from(seen) | ODD) if seen else draw(ODD)
    return json.loads(json.dumps(resource))


@PROPERTY
@given(data=st.data(), tolerant=st.booleans())
def test_facts_and_rules_never_raise(data, tolerant):
    index = data.draw(st.integers(0, len(SCENARIOS) - 1), label="scenario")
    s, record = SCENARIOS[index], json.loads(json.dumps(RECORDS[index]))
    record = [r for r in record if data.draw(st.integers(0, 5)) > 0]  # drop some
    record += data.draw(st.lists(random_resource(), max_size=8))
    patient = next((r for r in record if r["resourceType"] == "Patient"), None)
    drafts = json.loads(json.dumps(s.draft_orders or {"resourceType": "Bundle", "entry": []}))
    if data.draw(st.booleans()):
        drafts["entry"] = drafts.get("entry", []) + [{"resource": data.draw(draft_order(1))[0]}]
    unavailable = {
        g: "timed out"
        for g in data.draw(st.lists(st.sampled_from(GROUPS), max_size=4, unique=True))
    }
    renderer = CardRenderer(KNOWLEDGE)
    ERRORS.records.clear()
    orders = find_bone_agent_orders(drafts, KNOWLEDGE)
    draft_ids = frozenset(o.resource_id for o in orders if o.resource_id)
    companions = [r for r in bundle_resources(drafts) if r.get("id") not in draft_ids]
    facts = build_facts(
        patient, record, unavailable, KNOWLEDGE, ANCHOR_INSTANT, draft_ids, companions
    )
    findings = evaluate_orders(
        orders,
        facts,
        KNOWLEDGE,
        ORDER_RULES,
        f"Patient/{s.patient_id}",
        "Practitioner/p1",
        ANCHOR_INSTANT,
        tolerant=tolerant,
    )
    review = _KNOWN_SERVICES["bonecds-patient-view"]
    findings += review.evaluate(
        {"patientId": s.patient_id, "userId": "Practitioner/p1"},
        [],
        patient,
        record,
        unavailable,
        ANCHOR_INSTANT,
    )
    cards = [renderer.render(f) for f in findings]
    assert all(f.rule_id != "rule-error" for f in findings), [f.summary for f in findings]
    errors = [r.getMessage() for r in ERRORS.records]
    assert not errors, errors
    SCHEMAS.validate("cds-response", {"cards": cards})
    RUN["facts-and-rules"] += 1


# --- hostile bodies -------------------------------------------------------------------------------


@PROPERTY
@given(depth=st.integers(1, 1100), bracket=st.sampled_from(["[]", "{}"]))
def test_nesting_beyond_the_limit_is_a_400(client, depth, bracket):
    """A body nested deeper than max_json_depth (64) is refused with 400; so is one past orjson's
    own limit (1024)."""
    opening, closing = bracket
    inner = "[]" if bracket == "[]" else "{}"
    if bracket == "{}":
        raw = '{"a":' * (depth - 1) + inner + "}" * (depth - 1)
    else:
        raw = opening * (depth - 1) + inner + closing * (depth - 1)
    service_id = SERVICES[depth % 3]
    ERRORS.records.clear()
    response = client.post(f"/cds-services/{service_id}", data=raw, content_type="application/json")
    body = check_answer(response, (400,))
    if depth > 64:
        assert "nested deeper than 64" in body["issue"][0]["diagnostics"] or depth > 1024
    else:
        assert "nested" not in body["issue"][0]["diagnostics"]
    feedback = client.post(
        f"/cds-services/{service_id}/feedback", data=raw, content_type="application/json"
    )
    check_answer(feedback, (400,))
    RUN["nesting"] += 1


@PROPERTY
@given(
    raw=st.binary(max_size=300)
    | st.text(max_size=300).map(str.encode)
    | st.sampled_from(
        [
            b"NaN",
            b"[NaN]",
            b'{"hook": Infinity}',
            b"1e400",
            b'"\\ud800"',
            b"\xef\xbb\xbf{}",
            b"{}" * 3,
            b'{"hook":"order-sign","hook":"patient-view"}',
        ]
    ),
    content_type=st.sampled_from(["application/json", "application/fhir+json", "text/plain", ""]),
    path=st.sampled_from(
        [f"/cds-services/{s}" for s in SERVICES] + [f"/cds-services/{s}/feedback" for s in SERVICES]
    ),
)
def test_garbage_bodies_get_an_outcome(client, raw, content_type, path):
    ERRORS.records.clear()
    response = client.post(path, data=raw, content_type=content_type or None)
    check_answer(response, (400, 415))
    RUN["garbage"] += 1


@PROPERTY
@given(data=st.data())
def test_mutated_feedback_never_breaks_the_service(client, data):
    service_id = data.draw(st.sampled_from(SERVICES))
    body = {
        "feedback": [
            {
                "card": "4e0b3f43-7d2c-4a7e-8d7a-3f6f3bde9f10",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"code": "patient-declined", "system": "http://example.org"},
                    "userComment": "x",
                },
                "outcomeTimestamp": "2026-10-15T10:00:00Z",
            },
            {
                "card": "5e0b3f43-7d2c-4a7e-8d7a-3f6f3bde9f10",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "6e0b3f43-7d2c-4a7e-8d7a-3f6f3bde9f10"}],
                "outcomeTimestamp": "2026-10-15T10:00:00+02:00",
            },
        ]
    }
    _mutate(data, body, [("feedback",)])
    ERRORS.records.clear()
    response = client.post(
        f"/cds-services/{service_id}/feedback",
        data=json.dumps(body),
        content_type="application/json",
    )
    text = response.get_data(as_text=True)
    assert response.status_code in (200, 400), text
    if response.status_code == 400:
        SCHEMAS.validate("operation-outcome", response.get_json())
    assert not ERRORS.records, [r.getMessage() for r in ERRORS.records]
    RUN["feedback"] += 1
