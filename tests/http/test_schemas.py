"""Checks the CDS Hooks JSON Schemas with fastjsonschema (via SchemaValidators) and jsonschema side
by side."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from service.http.validation import MAX_MESSAGE_LENGTH, SchemaValidators, SchemaViolation

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "service" / "http" / "schemas"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.schema.json"))
EXPECTED_NAMES = {
    "cds-request",
    "cds-response",
    "discovery-response",
    "feedback-request",
    "operation-outcome",
    "order-select-context",
    "order-sign-context",
    "patient-view-context",
}


@pytest.fixture(scope="module")
def validators() -> SchemaValidators:
    return SchemaValidators()


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def draft7(name: str) -> jsonschema.Draft7Validator:
    # No format_checker: the schemas must not depend on "format" (fastjsonschema differs).
    return jsonschema.Draft7Validator(load_schema(name))


# --- editing helpers: invalid examples are small, named edits of valid ones ---------------


def _walk(doc: Any, dotted: str) -> tuple[Any, Any]:
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    node = doc
    for part in parents:
        node = node[part]
    return node, last


def changed(base: Any, dotted: str, value: Any) -> Any:
    doc = copy.deepcopy(base)
    node, last = _walk(doc, dotted)
    node[last] = copy.deepcopy(value)
    return doc


def removed(base: Any, dotted: str) -> Any:
    doc = copy.deepcopy(base)
    node, last = _walk(doc, dotted)
    del node[last]
    return doc


# --- realistic base documents (bone-modifying agents for a patient with breast cancer) ----

DRAFT_ZOLEDRONIC_ACID = {
    "resourceType": "MedicationRequest",
    "id": "draft-zol-1",
    "status": "draft",
    "intent": "order",
    # R4 says category is an array; the schema must not look inside resources.
    "category": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                "code": "outpatient",
            }
        ]
    },
    "medicationCodeableConcept": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "1662279",
                "display": "zoledronic acid 4 MG in 100 ML Injection",
            }
        ],
    },
    "subject": {"reference": "Patient/pat-1042"},
    "dosageInstruction": [{"text": "4 mg IV over 15 minutes every 12 weeks"}],
}

DRAFT_CALCIUM = {
    "resourceType": "MedicationRequest",
    "id": "draft-ca-2",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {"text": "Calcium carbonate 500 mg + vitamin D3 400 IU"},
    "subject": {"reference": "Patient/pat-1042"},
}

ORDER_SIGN_CONTEXT = {
    "userId": "PractitionerRole/onc-77",
    "patientId": "pat-1042",
    "encounterId": "enc-5531",
    "draftOrders": {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": DRAFT_ZOLEDRONIC_ACID}, {"resource": DRAFT_CALCIUM}],
    },
}

ORDER_SELECT_CONTEXT = {
    **ORDER_SIGN_CONTEXT,
    "selections": ["MedicationRequest/draft-zol-1"],
}

PATIENT_VIEW_CONTEXT = {"userId": "Practitioner/dr-ames", "patientId": "pat-1042"}

ORDER_SIGN_REQUEST = {
    "hook": "order-sign",
    "hookInstance": "c9b19f22-36cf-4c37-9fc6-b862218860fc",
    "fhirServer": "https://ehr.example.org/fhir/r4",
    "context": ORDER_SIGN_CONTEXT,
    "prefetch": {
        "patient": {
            "resourceType": "Patient",
            "id": "pat-1042",
            "gender": "female",
            "birthDate": "1961-04-09",
        },
        "renal": {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
                        "valueQuantity": {"value": 1.6, "unit": "mg/dL"},
                    }
                }
            ],
        },
        # null: the client looked and there is no data.
        "calcium": None,
        # An OperationOutcome in place of the data: the client's own fetch failed.
        "meds": {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "timeout", "diagnostics": "upstream timed out"}
            ],
        },
        "conditions": {"resourceType": "Bundle", "type": "searchset", "total": 0},
    },
}

FHIR_AUTHORIZATION = {
    "access_token": "opaque-token-for-tests-only",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/Patient.read patient/Observation.read patient/MedicationRequest.read",
    "subject": "bonecds",
    "patient": "pat-1042",
}

AUTHORIZED_REQUEST = {**ORDER_SIGN_REQUEST, "fhirAuthorization": FHIR_AUTHORIZATION}
del AUTHORIZED_REQUEST["prefetch"]

FEEDBACK_ACCEPTED = {
    "feedback": [
        {
            "card": "ee9562cf-4702-4f8b-8a31-a6491f574a19",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "8b87bdc5-b9f4-4489-bdad-2a07166e7ad8"}],
            "outcomeTimestamp": "2025-03-04T14:22:07Z",
        }
    ],
}

FEEDBACK_OVERRIDDEN_WITH_REASON = {
    "feedback": [
        {
            "card": "ee9562cf-4702-4f8b-8a31-a6491f574a19",
            "outcome": "overridden",
            "overrideReason": {
                "reason": {
                    "system": "http://bonecds.example.org/CodeSystem/override-reasons",
                    "code": "renal-reviewed",
                    "display": "Renal function reviewed by nephrology",
                },
                "userComment": "Discussed with nephrology this morning.",
            },
            "outcomeTimestamp": "2025-03-04T09:15:00.250+01:00",
        }
    ],
}

FEEDBACK_OVERRIDDEN = {
    "feedback": [
        {
            "card": "ee9562cf-4702-4f8b-8a31-a6491f574a19",
            "outcome": "overridden",
            "outcomeTimestamp": "2025-03-04T14:22:07Z",
        }
    ],
}

DISCOVERY = {
    "services": [
        {
            "hook": "order-sign",
            "id": "bone-modifying-agents",
            "title": "Bone-modifying agent safety check",
            "description": (
                "Checks renal function, calcium and dental history before a bisphosphonate or"
                " denosumab order is signed."
            ),
            "prefetch": {
                "patient": "Patient/{{context.patientId}}",
                "renal": (
                    "Observation?patient={{context.patientId}}&code=http://loinc.org|2160-0&_sort=-date&_count=5"
                ),
            },
            "usageRequirements": "Needs read access to Observation and MedicationRequest.",
        }
    ],
}

UPDATED_ZOLEDRONIC_ACID = {
    **DRAFT_ZOLEDRONIC_ACID,
    "dosageInstruction": [{"text": "3 mg IV over 15 minutes every 12 weeks (CrCl 30-39 mL/min)"}],
}

DENOSUMAB_ORDER = {
    "resourceType": "MedicationRequest",
    "status": "draft",
    "intent": "proposal",
    "medicationCodeableConcept": {"text": "denosumab 120 mg/1.7 mL injection"},
    "subject": {"reference": "Patient/pat-1042"},
    "dosageInstruction": [{"text": "120 mg subcutaneously every 4 weeks"}],
}

CARD_RESPONSE = {
    "cards": [
        {
            "uuid": "ee9562cf-4702-4f8b-8a31-a6491f574a19",
            "summary": "Zoledronic acid: CrCl 35 mL/min calls for a 3 mg dose, not 4 mg",
            "detail": (
                "The latest serum creatinine gives a **creatinine clearance of 35 mL/min**.\n\n"
                "The label reduces the dose to 3 mg for CrCl 30-39 mL/min."
            ),
            "indicator": "warning",
            "source": {
                "label": "bonecds bone-modifying agent check",
                "url": "https://bonecds.example.org/about",
                "icon": "https://bonecds.example.org/static/icon-100.png",
                "topic": {
                    "system": "http://bonecds.example.org/CodeSystem/card-topics",
                    "code": "renal-dose",
                    "display": "Renal dose adjustment",
                },
            },
            "suggestions": [
                {
                    "label": "Reduce the zoledronic acid dose to 3 mg",
                    "uuid": "8b87bdc5-b9f4-4489-bdad-2a07166e7ad8",
                    "isRecommended": True,
                    "actions": [
                        {
                            "type": "update",
                            "description": "Change the draft order to 3 mg",
                            "resource": UPDATED_ZOLEDRONIC_ACID,
                        }
                    ],
                },
                {
                    "label": "Switch to denosumab 120 mg",
                    "uuid": "47343b52-fe48-42e3-bdfa-80ecbab8b600",
                    "isRecommended": False,
                    "actions": [
                        {
                            "type": "delete",
                            "description": "Remove the draft zoledronic acid order",
                            "resourceId": "MedicationRequest/draft-zol-1",
                        },
                        {
                            "type": "create",
                            "description": "Order denosumab 120 mg every 4 weeks",
                            "resource": DENOSUMAB_ORDER,
                        },
                    ],
                },
            ],
            "selectionBehavior": "at-most-one",
            "overrideReasons": [
                {
                    "system": "http://bonecds.example.org/CodeSystem/override-reasons",
                    "code": "renal-reviewed",
                    "display": "Renal function reviewed by nephrology",
                },
                {
                    "system": "http://bonecds.example.org/CodeSystem/override-reasons",
                    "code": "newer-lab",
                    "display": "A newer creatinine result is available",
                },
            ],
            "links": [
                {
                    "label": "Bone-modifying agents guideline",
                    "url": "https://guidelines.example.org/bone-modifying-agents",
                    "type": "absolute",
                },
                {
                    "label": "Renal dosing calculator",
                    "url": "https://apps.example.org/renal/launch",
                    "type": "smart",
                    "appContext": '{"drug":"zoledronic-acid"}',
                    "autolaunchable": False,
                },
            ],
        },
        {
            "uuid": "3f2920ec-350c-4b77-af85-97ad4e40d941",
            "summary": "Dental review recommended before starting a bisphosphonate",
            "indicator": "info",
            "source": {"label": "bonecds bone-modifying agent check"},
        },
    ],
}

OPERATION_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "required",
            "diagnostics": "data.context.patientId is required",
            "expression": ["context.patientId"],
        }
    ],
}

# --- the example table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    id: str
    schema: str
    document: Any
    valid: bool
    reason: str
    path: str | None = None  # expected SchemaViolation.path, for invalid examples


def ok(id: str, schema: str, document: Any, reason: str) -> Example:
    return Example(id, schema, document, True, reason)


def bad(id: str, schema: str, document: Any, reason: str, path: str | None = None) -> Example:
    return Example(id, schema, document, False, reason, path)


SUMMARY_139 = "x" * 139
SUMMARY_140 = "x" * 140
LONG_ID = "a" * 65

EXAMPLES = [
    # cds-request
    ok(
        "request-order-sign-full-prefetch",
        "cds-request",
        ORDER_SIGN_REQUEST,
        "full order-sign request; prefetch holds a null key and an OperationOutcome value",
    ),
    ok(
        "request-with-fhirAuthorization",
        "cds-request",
        AUTHORIZED_REQUEST,
        "fhirAuthorization with fhirServer and no prefetch",
    ),
    ok(
        "request-fhirAuthorization-minimal",
        "cds-request",
        changed(
            AUTHORIZED_REQUEST,
            "fhirAuthorization",
            {"access_token": "opaque", "token_type": "Bearer", "scope": "user/*.read"},
        ),
        "real clients omit expires_in, subject and patient",
    ),
    ok(
        "request-expires_in-float-integer",
        "cds-request",
        changed(AUTHORIZED_REQUEST, "fhirAuthorization.expires_in", 300.0),
        "draft-07 counts 300.0 as an integer; both libraries agree",
    ),
    ok(
        "request-minimal",
        "cds-request",
        {
            "hook": "order-sign",
            "hookInstance": "1a51b79e-6dd5-4182-b941-cd46f8a9f7c7",
            "context": {},
        },
        "only the three required members; the context is checked by its own schema",
    ),
    ok(
        "request-uppercase-uuid",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "hookInstance", "1A51B79E-6DD5-4182-B941-CD46F8A9F7C7"),
        "UUID hex is case-insensitive",
    ),
    ok(
        "request-vendor-members",
        "cds-request",
        {
            **ORDER_SIGN_REQUEST,
            "extension": {"com.example.ehr.session": "s-9"},
            "x-vendor": {"a": 1},
        },
        "extension and unknown top-level members are allowed",
    ),
    ok(
        "request-http-fhirServer",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "fhirServer", "http://localhost:8080/fhir"),
        "plain http is allowed for local testing",
    ),
    ok(
        "request-empty-prefetch",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "prefetch", {}),
        "the client may honour none of the templates",
    ),
    bad(
        "request-missing-hook",
        "cds-request",
        removed(ORDER_SIGN_REQUEST, "hook"),
        "hook is required",
        "data.hook",
    ),
    bad(
        "request-empty-hook",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "hook", ""),
        "hook must not be empty",
        "data.hook",
    ),
    bad(
        "request-missing-hookInstance",
        "cds-request",
        removed(ORDER_SIGN_REQUEST, "hookInstance"),
        "hookInstance is required",
        "data.hookInstance",
    ),
    bad(
        "request-missing-context",
        "cds-request",
        removed(ORDER_SIGN_REQUEST, "context"),
        "context is required",
        "data.context",
    ),
    bad(
        "request-context-string",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "context", "pat-1042"),
        "context must be an object",
        "data.context",
    ),
    bad(
        "request-context-array",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "context", []),
        "context must be an object",
        "data.context",
    ),
    bad(
        "request-hookInstance-not-uuid",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "hookInstance", "12345"),
        "hookInstance must be a UUID",
        "data.hookInstance",
    ),
    bad(
        "request-hookInstance-urn-prefix",
        "cds-request",
        changed(
            ORDER_SIGN_REQUEST, "hookInstance", "urn:uuid:c9b19f22-36cf-4c37-9fc6-b862218860fc"
        ),
        "hookInstance is a bare UUID, not a urn:uuid: URI",
        "data.hookInstance",
    ),
    bad(
        "request-hookInstance-no-dashes",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "hookInstance", "c9b19f2236cf4c379fc6b862218860fc"),
        "hookInstance must use the 8-4-4-4-12 form",
        "data.hookInstance",
    ),
    bad(
        "request-fhirAuthorization-without-fhirServer",
        "cds-request",
        removed(AUTHORIZED_REQUEST, "fhirServer"),
        "fhirServer is required when fhirAuthorization is present",
        "data.fhirServer",
    ),
    bad(
        "request-fhirAuthorization-missing-access_token",
        "cds-request",
        removed(AUTHORIZED_REQUEST, "fhirAuthorization.access_token"),
        "access_token is required",
        "data.fhirAuthorization.access_token",
    ),
    bad(
        "request-fhirAuthorization-empty-access_token",
        "cds-request",
        changed(AUTHORIZED_REQUEST, "fhirAuthorization.access_token", ""),
        "access_token must not be empty",
        "data.fhirAuthorization.access_token",
    ),
    bad(
        "request-fhirAuthorization-missing-token_type",
        "cds-request",
        removed(AUTHORIZED_REQUEST, "fhirAuthorization.token_type"),
        "token_type is required",
        "data.fhirAuthorization.token_type",
    ),
    bad(
        "request-expires_in-string",
        "cds-request",
        changed(AUTHORIZED_REQUEST, "fhirAuthorization.expires_in", "300"),
        "expires_in must be an integer",
        "data.fhirAuthorization.expires_in",
    ),
    bad(
        "request-expires_in-boolean",
        "cds-request",
        changed(AUTHORIZED_REQUEST, "fhirAuthorization.expires_in", True),
        "a boolean is not an integer",
        "data.fhirAuthorization.expires_in",
    ),
    bad(
        "request-fhirServer-not-url",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "fhirServer", "ehr.example.org/fhir"),
        "fhirServer must be an absolute http(s) URL",
        "data.fhirServer",
    ),
    bad(
        "request-prefetch-string-value",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "prefetch.patient", "Patient/pat-1042"),
        "a prefetch value is a resource or null, never a string",
        "data.prefetch.patient",
    ),
    bad(
        "request-prefetch-array-value",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "prefetch.renal", []),
        "a prefetch value is a resource or null, never an array",
        "data.prefetch.renal",
    ),
    bad(
        "request-prefetch-not-object",
        "cds-request",
        changed(ORDER_SIGN_REQUEST, "prefetch", []),
        "prefetch must be an object",
        "data.prefetch",
    ),
    bad(
        "request-not-object",
        "cds-request",
        [ORDER_SIGN_REQUEST],
        "the body must be a JSON object",
        "data",
    ),
    # order-sign context
    ok(
        "order-sign-context-full",
        "order-sign-context",
        ORDER_SIGN_CONTEXT,
        "two draft MedicationRequests, one with an R4-invalid category object the schema ignores",
    ),
    ok(
        "order-sign-context-bundle-without-type",
        "order-sign-context",
        removed(ORDER_SIGN_CONTEXT, "draftOrders.type"),
        "the CDS Hooks Sandbox omits Bundle.type",
    ),
    ok(
        "order-sign-context-practitioner-no-encounter",
        "order-sign-context",
        removed(changed(ORDER_SIGN_CONTEXT, "userId", "Practitioner/dr-ames"), "encounterId"),
        "Practitioner user and no encounter",
    ),
    ok(
        "order-sign-context-bundle-without-entry",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "draftOrders", {"resourceType": "Bundle"}),
        "entry is optional",
    ),
    ok(
        "order-sign-context-resigned-order",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "draftOrders.entry.0.resource.status", "active"),
        "re-signed orders have a status other than draft",
    ),
    ok(
        "order-sign-context-vendor-member",
        "order-sign-context",
        {**ORDER_SIGN_CONTEXT, "com.example.department": "oncology"},
        "additional context members are allowed",
    ),
    bad(
        "order-sign-context-patient-user",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "userId", "Patient/1"),
        "order-sign users are Practitioner or PractitionerRole",
        "data.userId",
    ),
    bad(
        "order-sign-context-bare-user-id",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "userId", "onc-77"),
        "userId carries the resource type",
        "data.userId",
    ),
    bad(
        "order-sign-context-missing-userId",
        "order-sign-context",
        removed(ORDER_SIGN_CONTEXT, "userId"),
        "userId is required",
        "data.userId",
    ),
    bad(
        "order-sign-context-missing-patientId",
        "order-sign-context",
        removed(ORDER_SIGN_CONTEXT, "patientId"),
        "patientId is required",
        "data.patientId",
    ),
    bad(
        "order-sign-context-patientId-reference",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "patientId", "Patient/pat-1042"),
        "patientId is a bare FHIR id",
        "data.patientId",
    ),
    bad(
        "order-sign-context-patientId-too-long",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "patientId", LONG_ID),
        "a FHIR id has at most 64 characters",
        "data.patientId",
    ),
    bad(
        "order-sign-context-encounterId-empty",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "encounterId", ""),
        "encounterId must not be empty",
        "data.encounterId",
    ),
    bad(
        "order-sign-context-missing-draftOrders",
        "order-sign-context",
        removed(ORDER_SIGN_CONTEXT, "draftOrders"),
        "draftOrders is required",
        "data.draftOrders",
    ),
    bad(
        "order-sign-context-draftOrders-not-bundle",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "draftOrders", DRAFT_ZOLEDRONIC_ACID),
        "draftOrders must be a Bundle",
        "data.draftOrders.resourceType",
    ),
    bad(
        "order-sign-context-draftOrders-no-resourceType",
        "order-sign-context",
        removed(ORDER_SIGN_CONTEXT, "draftOrders.resourceType"),
        "draftOrders needs resourceType Bundle",
        "data.draftOrders.resourceType",
    ),
    bad(
        "order-sign-context-draftOrders-array",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "draftOrders", [DRAFT_ZOLEDRONIC_ACID]),
        "draftOrders must be an object",
        "data.draftOrders",
    ),
    bad(
        "order-sign-context-entry-not-array",
        "order-sign-context",
        changed(ORDER_SIGN_CONTEXT, "draftOrders.entry", {"resource": DRAFT_ZOLEDRONIC_ACID}),
        "Bundle.entry must be an array",
        "data.draftOrders.entry",
    ),
    # order-select context
    ok(
        "order-select-context",
        "order-select-context",
        ORDER_SELECT_CONTEXT,
        "order-sign context plus selections",
    ),
    ok(
        "order-select-context-bundle-without-type",
        "order-select-context",
        removed(ORDER_SELECT_CONTEXT, "draftOrders.type"),
        "Bundle.type is optional",
    ),
    bad(
        "order-select-context-missing-selections",
        "order-select-context",
        ORDER_SIGN_CONTEXT,
        "selections is required for order-select",
        "data.selections",
    ),
    bad(
        "order-select-context-empty-selections",
        "order-select-context",
        changed(ORDER_SELECT_CONTEXT, "selections", []),
        "selections must not be empty",
        "data.selections",
    ),
    bad(
        "order-select-context-bare-selection",
        "order-select-context",
        changed(ORDER_SELECT_CONTEXT, "selections", ["draft-zol-1"]),
        "each selection is Type/id",
        "data.selections[0]",
    ),
    bad(
        "order-select-context-patient-user",
        "order-select-context",
        changed(ORDER_SELECT_CONTEXT, "userId", "Patient/1"),
        "order-select users are Practitioner or PractitionerRole",
        "data.userId",
    ),
    # patient-view context
    ok(
        "patient-view-context-practitioner",
        "patient-view-context",
        PATIENT_VIEW_CONTEXT,
        "a Practitioner opens the chart",
    ),
    ok(
        "patient-view-context-patient-user",
        "patient-view-context",
        {"userId": "Patient/pat-1042", "patientId": "pat-1042", "encounterId": "enc-5531"},
        "patient-view also fires for patients and related persons",
    ),
    ok(
        "patient-view-context-related-person",
        "patient-view-context",
        changed(PATIENT_VIEW_CONTEXT, "userId", "RelatedPerson/rp-3"),
        "RelatedPerson user",
    ),
    bad(
        "patient-view-context-device-user",
        "patient-view-context",
        changed(PATIENT_VIEW_CONTEXT, "userId", "Device/1"),
        "a Device is not a patient-view user",
        "data.userId",
    ),
    bad(
        "patient-view-context-missing-patientId",
        "patient-view-context",
        removed(PATIENT_VIEW_CONTEXT, "patientId"),
        "patientId is required",
        "data.patientId",
    ),
    # feedback
    ok(
        "feedback-accepted",
        "feedback-request",
        FEEDBACK_ACCEPTED,
        "accepted with the suggestion id",
    ),
    ok(
        "feedback-overridden-with-reason",
        "feedback-request",
        FEEDBACK_OVERRIDDEN_WITH_REASON,
        "overridden with a coded reason and a comment; timestamp with offset and fraction",
    ),
    ok(
        "feedback-overridden-without-reason",
        "feedback-request",
        FEEDBACK_OVERRIDDEN,
        "overrideReason is optional",
    ),
    ok(
        "feedback-several-items",
        "feedback-request",
        {"feedback": FEEDBACK_ACCEPTED["feedback"] + FEEDBACK_OVERRIDDEN["feedback"]},
        "one POST may carry feedback for several cards",
    ),
    ok(
        "feedback-override-comment-only",
        "feedback-request",
        changed(
            FEEDBACK_OVERRIDDEN, "feedback.0.overrideReason", {"userComment": "Patient preference"}
        ),
        "the reason Coding is conditional",
    ),
    ok(
        "feedback-timestamp-negative-offset",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2024-02-29T23:59:60-05:00"),
        "negative offset; leap second allowed by RFC 3339",
    ),
    bad(
        "feedback-bad-outcome",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcome", "ignored"),
        "outcome must be accepted or overridden",
        "data.feedback[0].outcome",
    ),
    bad(
        "feedback-accepted-without-suggestions",
        "feedback-request",
        removed(FEEDBACK_ACCEPTED, "feedback.0.acceptedSuggestions"),
        "accepted needs acceptedSuggestions",
        "data.feedback[0].acceptedSuggestions",
    ),
    bad(
        "feedback-accepted-empty-suggestions",
        "feedback-request",
        changed(FEEDBACK_ACCEPTED, "feedback.0.acceptedSuggestions", []),
        "acceptedSuggestions must not be empty",
        "data.feedback[0].acceptedSuggestions",
    ),
    bad(
        "feedback-suggestion-without-id",
        "feedback-request",
        changed(FEEDBACK_ACCEPTED, "feedback.0.acceptedSuggestions", [{}]),
        "an accepted suggestion needs its id",
        "data.feedback[0].acceptedSuggestions[0].id",
    ),
    bad(
        "feedback-missing-card",
        "feedback-request",
        removed(FEEDBACK_ACCEPTED, "feedback.0.card"),
        "card is required",
        "data.feedback[0].card",
    ),
    bad(
        "feedback-empty-card",
        "feedback-request",
        changed(FEEDBACK_ACCEPTED, "feedback.0.card", ""),
        "card must not be empty",
        "data.feedback[0].card",
    ),
    bad(
        "feedback-missing-outcome",
        "feedback-request",
        removed(FEEDBACK_OVERRIDDEN, "feedback.0.outcome"),
        "outcome is required",
        "data.feedback[0].outcome",
    ),
    bad(
        "feedback-missing-timestamp",
        "feedback-request",
        removed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp"),
        "outcomeTimestamp is required",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-month-13",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2021-13-01T00:00:00Z"),
        "there is no month 13",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-day-32",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2021-01-32T00:00:00Z"),
        "there is no day 32",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-hour-24",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2021-01-01T24:00:00Z"),
        "hours run 00-23",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-no-timezone",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2021-12-11T10:05:31"),
        "a timestamp without a timezone is ambiguous",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-date-only",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2021-12-11"),
        "a date is not a date-time",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-space-separator",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", "2021-12-11 10:05:31Z"),
        "date and time are separated by T",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-timestamp-epoch-number",
        "feedback-request",
        changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcomeTimestamp", 1639217131),
        "outcomeTimestamp is a string",
        "data.feedback[0].outcomeTimestamp",
    ),
    bad(
        "feedback-reason-without-system",
        "feedback-request",
        removed(FEEDBACK_OVERRIDDEN_WITH_REASON, "feedback.0.overrideReason.reason.system"),
        "a reason Coding needs system",
        "data.feedback[0].overrideReason.reason.system",
    ),
    bad(
        "feedback-empty-list",
        "feedback-request",
        {"feedback": []},
        "feedback must not be empty",
        "data.feedback",
    ),
    bad("feedback-missing", "feedback-request", {}, "feedback is required", "data.feedback"),
    # discovery
    ok("discovery-our-service", "discovery-response", DISCOVERY, "our order-sign service"),
    ok(
        "discovery-no-services",
        "discovery-response",
        {"services": []},
        "a server with no services returns an empty array",
    ),
    ok(
        "discovery-minimal-service",
        "discovery-response",
        {"services": [{"hook": "patient-view", "id": "static", "description": "Static cards."}]},
        "title, prefetch and usageRequirements are optional",
    ),
    bad(
        "discovery-id-with-slash",
        "discovery-response",
        changed(DISCOVERY, "services.0.id", "bone/agents"),
        "the id is one URL path segment",
        "data.services[0].id",
    ),
    bad(
        "discovery-id-with-query",
        "discovery-response",
        changed(DISCOVERY, "services.0.id", "bone?x=1"),
        "the id is one URL path segment",
        "data.services[0].id",
    ),
    bad(
        "discovery-missing-description",
        "discovery-response",
        removed(DISCOVERY, "services.0.description"),
        "description is required",
        "data.services[0].description",
    ),
    bad(
        "discovery-empty-title",
        "discovery-response",
        changed(DISCOVERY, "services.0.title", ""),
        "no empty strings",
        "data.services[0].title",
    ),
    bad(
        "discovery-empty-prefetch",
        "discovery-response",
        changed(DISCOVERY, "services.0.prefetch", {}),
        "omit prefetch instead of sending {}",
        "data.services[0].prefetch",
    ),
    bad(
        "discovery-empty-template",
        "discovery-response",
        changed(DISCOVERY, "services.0.prefetch.renal", ""),
        "a prefetch template must not be empty",
        "data.services[0].prefetch.renal",
    ),
    bad(
        "discovery-missing-services",
        "discovery-response",
        {},
        "services is required",
        "data.services",
    ),
    # cds-response
    ok(
        "response-realistic",
        "cds-response",
        CARD_RESPONSE,
        "update, delete and create actions, links, overrideReasons, topic",
    ),
    ok("response-empty", "cds-response", {"cards": []}, "no guidance"),
    ok(
        "response-card-extension",
        "cds-response",
        changed(
            CARD_RESPONSE,
            "cards.0.extension",
            {"bonecds": {"rule": "renal-dose-adjust", "knowledgeVersion": "2026.12.3"}},
        ),
        "the service's card extension: rule id and knowledge version",
    ),
    bad(
        "response-card-extension-without-version",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.extension", {"bonecds": {"rule": "renal-dose-adjust"}}),
        "the service's card extension names the knowledge version",
        "data.cards[0].extension.bonecds.knowledgeVersion",
    ),
    ok(
        "response-summary-139",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.summary", SUMMARY_139),
        "139 characters is the longest legal summary",
    ),
    ok(
        "response-summary-139-non-ascii",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.summary", "é" * 139),
        "length counts characters, not bytes",
    ),
    ok(
        "response-system-actions",
        "cds-response",
        {
            "cards": [],
            "systemActions": [
                {
                    "type": "update",
                    "description": "Record the renal dose check",
                    "resource": UPDATED_ZOLEDRONIC_ACID,
                }
            ],
        },
        "systemActions without cards",
    ),
    ok(
        "response-suggestion-without-actions",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.suggestions.1", {"label": "Discuss with nephrology"}),
        "a suggestion may have only a label",
    ),
    ok(
        "response-selection-any",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.selectionBehavior", "any"),
        "any is a 2.0 value",
    ),
    ok(
        "response-extensions",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.extension", {"org.example.bonecds.rule": "renal-1"}),
        "extension is allowed on cards",
    ),
    bad("response-missing-cards", "cds-response", {}, "cards is required", "data.cards"),
    bad(
        "response-summary-140",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.summary", SUMMARY_140),
        "summary must be shorter than 140 characters",
        "data.cards[1].summary",
    ),
    bad(
        "response-empty-summary",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.summary", ""),
        "summary must not be empty",
        "data.cards[1].summary",
    ),
    bad(
        "response-empty-detail",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.detail", ""),
        "omit detail instead of sending an empty string",
        "data.cards[0].detail",
    ),
    bad(
        "response-null-detail",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.detail", None),
        "nothing may be null",
        "data.cards[0].detail",
    ),
    bad(
        "response-suggestions-without-selectionBehavior",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.selectionBehavior"),
        "selectionBehavior is required whenever suggestions are present",
        "data.cards[0].selectionBehavior",
    ),
    bad(
        "response-selectionBehavior-all",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.selectionBehavior", "all"),
        "all is a 3.0 actionSelectionBehavior value, not a selectionBehavior",
        "data.cards[0].selectionBehavior",
    ),
    bad(
        "response-empty-suggestions",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.suggestions", []),
        "omit suggestions instead of sending []",
        "data.cards[0].suggestions",
    ),
    bad(
        "response-delete-without-resourceId",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.suggestions.1.actions.0.resourceId"),
        "delete needs resourceId",
        "data.cards[0].suggestions[1].actions[0].resourceId",
    ),
    bad(
        "response-delete-bare-resourceId",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.suggestions.1.actions.0.resourceId", "draft-zol-1"),
        "resourceId is Type/id",
        "data.cards[0].suggestions[1].actions[0].resourceId",
    ),
    bad(
        "response-create-without-resource",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.suggestions.1.actions.1.resource"),
        "create needs resource",
        "data.cards[0].suggestions[1].actions[1].resource",
    ),
    bad(
        "response-update-without-resource",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.suggestions.0.actions.0.resource"),
        "update needs resource",
        "data.cards[0].suggestions[0].actions[0].resource",
    ),
    bad(
        "response-resource-without-resourceType",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.suggestions.1.actions.1.resource.resourceType"),
        "an action resource needs resourceType",
        "data.cards[0].suggestions[1].actions[1].resource.resourceType",
    ),
    bad(
        "response-action-without-description",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.suggestions.1.actions.0.description"),
        "description is required in 2.0",
        "data.cards[0].suggestions[1].actions[0].description",
    ),
    bad(
        "response-action-type-modify",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.suggestions.0.actions.0.type", "modify"),
        "type must be create, update or delete",
        "data.cards[0].suggestions[0].actions[0].type",
    ),
    bad(
        "response-isRecommended-string",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.suggestions.0.isRecommended", "true"),
        "isRecommended is a boolean",
        "data.cards[0].suggestions[0].isRecommended",
    ),
    bad(
        "response-suggestion-uuid-not-uuid",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.suggestions.0.uuid", "suggestion-1"),
        "suggestion uuid must be a UUID",
        "data.cards[0].suggestions[0].uuid",
    ),
    bad(
        "response-override-reason-without-display",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.overrideReasons.1.display"),
        "the service must populate display on override reasons",
        "data.cards[0].overrideReasons[1].display",
    ),
    bad(
        "response-link-appContext-absolute",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.links.0.appContext", '{"a":1}'),
        "appContext is only for smart links",
        "data.cards[0].links[0].appContext",
    ),
    bad(
        "response-link-relative-url",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.links.0.url", "/guidelines/bma"),
        "link url must be absolute",
        "data.cards[0].links[0].url",
    ),
    bad(
        "response-link-missing-type",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.links.0.type"),
        "link type is required",
        "data.cards[0].links[0].type",
    ),
    bad(
        "response-empty-links",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.links", []),
        "omit links instead of sending []",
        "data.cards[0].links",
    ),
    bad(
        "response-indicator-hard-stop",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.indicator", "hard-stop"),
        "hard-stop is a pre-1.0 indicator",
        "data.cards[1].indicator",
    ),
    bad(
        "response-card-unknown-property",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.severity", "high"),
        "cards allow no unknown members",
        "data.cards[1].severity",
    ),
    bad(
        "response-card-uuid-not-uuid",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.uuid", "card-1"),
        "card uuid must be a UUID",
        "data.cards[1].uuid",
    ),
    bad(
        "response-card-missing-source",
        "cds-response",
        removed(CARD_RESPONSE, "cards.1.source"),
        "source is required",
        "data.cards[1].source",
    ),
    bad(
        "response-source-missing-label",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.source.label"),
        "source.label is required",
        "data.cards[0].source.label",
    ),
    bad(
        "response-source-relative-icon",
        "cds-response",
        changed(CARD_RESPONSE, "cards.0.source.icon", "icon.png"),
        "icon must be an absolute URL",
        "data.cards[0].source.icon",
    ),
    bad(
        "response-topic-without-system",
        "cds-response",
        removed(CARD_RESPONSE, "cards.0.source.topic.system"),
        "a topic Coding needs system",
        "data.cards[0].source.topic.system",
    ),
    bad(
        "response-empty-extension",
        "cds-response",
        changed(CARD_RESPONSE, "cards.1.extension", {}),
        "omit extension instead of sending {}",
        "data.cards[1].extension",
    ),
    bad(
        "response-empty-systemActions",
        "cds-response",
        {"cards": [], "systemActions": []},
        "omit systemActions instead of sending []",
        "data.systemActions",
    ),
    bad(
        "response-unknown-top-level",
        "cds-response",
        {"cards": [], "warnings": ["x"]},
        "the response allows only cards, systemActions and extension",
        "data.warnings",
    ),
    # operation-outcome
    ok(
        "operation-outcome-400",
        "operation-outcome",
        OPERATION_OUTCOME,
        "a 400 body naming the field",
    ),
    ok(
        "operation-outcome-412",
        "operation-outcome",
        {
            "resourceType": "OperationOutcome",
            "id": "oo-1",
            "issue": [{"severity": "error", "code": "not-found"}],
        },
        "a 412 body with no diagnostics",
    ),
    bad(
        "operation-outcome-wrong-resourceType",
        "operation-outcome",
        changed(OPERATION_OUTCOME, "resourceType", "Bundle"),
        "resourceType must be OperationOutcome",
        "data.resourceType",
    ),
    bad(
        "operation-outcome-no-issues",
        "operation-outcome",
        changed(OPERATION_OUTCOME, "issue", []),
        "at least one issue",
        "data.issue",
    ),
    bad(
        "operation-outcome-bad-severity",
        "operation-outcome",
        changed(OPERATION_OUTCOME, "issue.0.severity", "critical"),
        "severity is fatal, error, warning or information",
        "data.issue[0].severity",
    ),
    bad(
        "operation-outcome-missing-code",
        "operation-outcome",
        removed(OPERATION_OUTCOME, "issue.0.code"),
        "issue.code is required",
        "data.issue[0].code",
    ),
    bad(
        "operation-outcome-expression-string",
        "operation-outcome",
        changed(OPERATION_OUTCOME, "issue.0.expression", "context.patientId"),
        "expression is an array",
        "data.issue[0].expression",
    ),
]

INVALID_EXAMPLES = [e for e in EXAMPLES if not e.valid]


def _params(examples: list[Example]) -> list[Any]:
    return [pytest.param(e, id=f"{e.schema}:{e.id}") for e in examples]


# --- tests -------------------------------------------------------------------------------


def test_example_ids_are_unique() -> None:
    ids = [e.id for e in EXAMPLES]
    assert len(ids) == len(set(ids))


def test_every_schema_has_valid_and_invalid_examples() -> None:
    for name in EXPECTED_NAMES:
        kinds = {e.valid for e in EXAMPLES if e.schema == name}
        assert kinds == {True, False}, name


def test_schema_files_are_the_expected_set(validators: SchemaValidators) -> None:
    stems = {p.name.removesuffix(".schema.json") for p in SCHEMA_FILES}
    assert stems == EXPECTED_NAMES
    assert set(validators.names) == EXPECTED_NAMES


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft07(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_uses_no_format_keyword(path: Path) -> None:
    # fastjsonschema and jsonschema implement "format" differently; patterns agree.
    assert '"format"' not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("example", _params(EXAMPLES))
def test_both_validators_agree_with_expectation(
    validators: SchemaValidators, example: Example
) -> None:
    try:
        validators.validate(example.schema, example.document)
        fast_valid, fast_detail = True, ""
    except SchemaViolation as exc:
        fast_valid, fast_detail = False, f"{exc.path}: {exc.message}"
    js_errors = [e.message for e in draft7(example.schema).iter_errors(example.document)]
    js_valid = not js_errors

    expected = "valid" if example.valid else "invalid"
    assert fast_valid == example.valid, (
        f"fastjsonschema: expected {expected} ({example.reason}); got {fast_detail}"
    )
    assert js_valid == example.valid, (
        f"jsonschema: expected {expected} ({example.reason}); got {js_errors}"
    )


@pytest.mark.parametrize("example", _params(INVALID_EXAMPLES))
def test_violation_points_at_the_offending_field(
    validators: SchemaValidators, example: Example
) -> None:
    with pytest.raises(SchemaViolation) as caught:
        validators.validate(example.schema, example.document)
    violation = caught.value
    if example.path is not None:
        assert violation.path == example.path, violation.message
    assert violation.message.startswith(violation.path)
    assert len(violation.message) <= MAX_MESSAGE_LENGTH
    assert str(violation) == violation.message


@pytest.mark.parametrize(
    ("schema", "document", "expected_message"),
    [
        pytest.param(
            "cds-request",
            removed(ORDER_SIGN_REQUEST, "hookInstance"),
            "data.hookInstance is required",
            id="required",
        ),
        pytest.param(
            "cds-request",
            removed(AUTHORIZED_REQUEST, "fhirServer"),
            "data.fhirServer is required when fhirAuthorization is present",
            id="dependency",
        ),
        pytest.param(
            "feedback-request",
            changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcome", "ignored"),
            "data.feedback[0].outcome must be one of accepted, overridden",
            id="enum",
        ),
        pytest.param(
            "order-sign-context",
            changed(ORDER_SIGN_CONTEXT, "userId", "Patient/1"),
            "data.userId is not a valid Practitioner or PractitionerRole reference",
            id="pattern",
        ),
        pytest.param(
            "cds-request",
            changed(ORDER_SIGN_REQUEST, "context", []),
            "data.context must be an object",
            id="type",
        ),
        pytest.param(
            "cds-response",
            changed(CARD_RESPONSE, "cards.1.summary", SUMMARY_140),
            "data.cards[1].summary must be at most 139 characters long",
            id="maxLength",
        ),
        pytest.param(
            "cds-response",
            changed(CARD_RESPONSE, "cards.0.links", []),
            "data.cards[0].links must not be empty",
            id="minItems",
        ),
        pytest.param(
            "cds-response",
            changed(CARD_RESPONSE, "cards.1.severity", "high"),
            "data.cards[1].severity is not allowed",
            id="additionalProperties",
        ),
        pytest.param(
            "cds-response",
            changed(CARD_RESPONSE, "cards.0.links.0.appContext", "{}"),
            "data.cards[0].links[0].appContext is not allowed here",
            id="false-schema",
        ),
        pytest.param(
            "order-sign-context",
            changed(ORDER_SIGN_CONTEXT, "draftOrders.resourceType", "List"),
            "data.draftOrders.resourceType must be Bundle",
            id="const",
        ),
    ],
)
def test_violation_messages(
    validators: SchemaValidators, schema: str, document: Any, expected_message: str
) -> None:
    with pytest.raises(SchemaViolation) as caught:
        validators.validate(schema, document)
    assert caught.value.message == expected_message


SECRET = "Jane Q. Doe 1961-04-09 MRN 00417733"


@pytest.mark.parametrize(
    ("schema", "document"),
    [
        pytest.param(
            "cds-request", changed(ORDER_SIGN_REQUEST, "hookInstance", SECRET), id="pattern"
        ),
        pytest.param(
            "order-sign-context", changed(ORDER_SIGN_CONTEXT, "patientId", SECRET), id="fhir-id"
        ),
        pytest.param(
            "order-sign-context", changed(ORDER_SIGN_CONTEXT, "draftOrders", SECRET), id="type"
        ),
        pytest.param(
            "cds-request", changed(ORDER_SIGN_REQUEST, "prefetch.patient", SECRET), id="prefetch"
        ),
        pytest.param(
            "feedback-request",
            changed(FEEDBACK_OVERRIDDEN, "feedback.0.outcome", SECRET),
            id="enum",
        ),
        pytest.param("cds-request", changed(ORDER_SIGN_REQUEST, "context", [SECRET]), id="context"),
        pytest.param(
            "cds-response", changed(CARD_RESPONSE, "cards.1.summary", SECRET * 10), id="maxLength"
        ),
        pytest.param(
            "operation-outcome", changed(OPERATION_OUTCOME, "resourceType", SECRET), id="const"
        ),
    ],
)
def test_violation_never_echoes_the_value(
    validators: SchemaValidators, schema: str, document: Any
) -> None:
    with pytest.raises(SchemaViolation) as caught:
        validators.validate(schema, document)
    violation = caught.value
    for text in (violation.message, violation.path, str(violation), repr(violation)):
        assert "Jane" not in text and "00417733" not in text
    # The library exception holds the raw value; it must not be chained into tracebacks.
    assert violation.__cause__ is None and violation.__suppress_context__


def test_long_unknown_member_name_is_clipped(validators: SchemaValidators) -> None:
    document = {"cards": [], "k" * 5000: 1}
    with pytest.raises(SchemaViolation) as caught:
        validators.validate("cds-response", document)
    assert len(caught.value.message) <= MAX_MESSAGE_LENGTH
    assert len(caught.value.path) <= MAX_MESSAGE_LENGTH


def test_validation_does_not_modify_the_document(validators: SchemaValidators) -> None:
    for example in EXAMPLES:
        document = copy.deepcopy(example.document)
        try:
            validators.validate(example.schema, document)
        except SchemaViolation:
            pass
        assert document == example.document, example.id


def test_unknown_schema_name(validators: SchemaValidators) -> None:
    with pytest.raises(KeyError):
        validators.validate("no-such-schema", {})


def test_schema_violation_is_a_value_error() -> None:
    violation = SchemaViolation("data.hook is required", "data.hook")
    assert isinstance(violation, ValueError)
    assert (violation.message, violation.path) == ("data.hook is required", "data.hook")


@pytest.mark.parametrize(
    ("schema", "document"),
    [
        pytest.param(
            "cds-request",
            changed(ORDER_SIGN_REQUEST, "hookInstance", "c9b19f22-36cf-4c37-9fc6-b862218860fc\n"),
            id="hookInstance",
        ),
        pytest.param(
            "order-sign-context",
            changed(ORDER_SIGN_CONTEXT, "patientId", "pat-1042\n"),
            id="patientId",
        ),
        pytest.param(
            "discovery-response",
            changed(DISCOVERY, "services.0.id", "bone-modifying-agents\n"),
            id="service-id",
        ),
    ],
)
def test_trailing_newline_is_rejected(
    validators: SchemaValidators, schema: str, document: Any
) -> None:
    # Known divergence, hence not in the agreement table: in Python's re, "$" also matches
    # before a final newline. fastjsonschema rewrites "$" to "\Z" and rejects; jsonschema
    # uses the pattern as written and accepts. The service validates with fastjsonschema.
    with pytest.raises(SchemaViolation):
        validators.validate(schema, document)
    assert draft7(schema).is_valid(document)
