"""OpenAPI 3.1 description of the service, built from the JSON Schemas in service/http/schemas/ and
served at GET /openapi.json."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import orjson
from flask import Blueprint, Response, current_app

from service.version import software_version

bp = Blueprint("openapi", __name__)

_SCHEMA_FILES = (
    "cds-request",
    "cds-response",
    "discovery-response",
    "feedback-request",
    "operation-outcome",
    "order-sign-context",
    "order-select-context",
    "patient-view-context",
)
ERRORS = {
    400: "Invalid request (not JSON, nested too deep, or not matching the request schema)",
    401: "Client authentication failed (when JWT authentication is on)",
    404: "No such CDS service",
    412: "The patient's record could not be obtained",
    413: "Request body too large",
    415: "Content-Type is not JSON",
    503: "Busy: too many calls of this worker are reading FHIR servers (Retry-After says when to"
    " try again)",
}


def _schema_file(name: str) -> dict[str, Any]:
    text = (
        resources.files("service.http")
        .joinpath("schemas", f"{name}.schema.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def _to_components(name: str, schema: dict[str, Any], components: dict[str, Any]) -> dict[str, str]:
    """Put a draft-07 schema into components/schemas (its definitions as `name.definition`), refs
    rewritten; OpenAPI 3.1 uses JSON Schema 2020-12, so `dependencies` becomes
    `dependentRequired`/`dependentSchemas`.
    """
    schema = copy.deepcopy(schema)
    definitions = schema.pop("definitions", {})
    schema.pop("$schema", None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and value.startswith("#/definitions/"):
                    out[key] = f"#/components/schemas/{name}.{value.rsplit('/', 1)[1]}"
                elif key == "dependencies" and isinstance(value, dict):
                    required = {k: v for k, v in value.items() if isinstance(v, list)}
                    schemas = {k: rewrite(v) for k, v in value.items() if not isinstance(v, list)}
                    if required:
                        out["dependentRequired"] = required
                    if schemas:
                        out["dependentSchemas"] = schemas
                elif key in ("properties", "patternProperties") and isinstance(value, dict):
                    # property names are not keywords
                    out[key] = {k: rewrite(v) for k, v in value.items()}
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for definition, body in definitions.items():
        components[f"{name}.{definition}"] = rewrite(body)
    components[name] = rewrite(schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"$ref": f"#/components/responses/Error{code}"} for code in codes}


def build_openapi(services: dict[str, Any], version: str = "") -> dict[str, Any]:
    """The OpenAPI document for these CDS services (ids, hooks and context schemas from the service
    objects)."""
    components: dict[str, Any] = {}
    refs = {name: _to_components(name, _schema_file(name), components) for name in _SCHEMA_FILES}
    components["FeedbackReceipt"] = {
        "type": "object",
        "required": ["stored", "duplicates", "unknownCards"],
        "properties": {
            k: {"type": "integer", "minimum": 0}
            for k in ("stored", "duplicates", "unknownCards", "queued", "notKept")
        },
    }
    components["Health"] = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "ready", "degraded", "starting"]},
            "workers": {"type": "string"},
            "database": {"type": "string"},
            "backend": {"type": "string"},
            "queuedWrites": {"type": "integer", "minimum": 0},
            "knowledge": {"type": "string"},
        },
    }
    paths: dict[str, Any] = {
        "/cds-services": {
            "get": {
                "operationId": "discovery",
                "summary": "CDS Hooks discovery",
                "responses": {
                    "200": _json(refs["discovery-response"], "The CDS services offered"),
                    **_errors(401),
                },
            }
        },
        "/cds-services/{service_id}": {
            "post": {
                "operationId": "unknownService",
                "summary": "A service id that is not offered",
                "parameters": [
                    {
                        "name": "service_id",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9._~-]{1,64}$",
                            "not": {"enum": sorted(services)},
                        },
                    }
                ],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
                "responses": _errors(404),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "security": [],
                "summary": "Liveness",
                "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "security": [],
                "summary": (
                    "Readiness: answers hook calls (status degraded while the database is away)"
                ),
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Health"}, "Ready or degraded"),
                    "503": _json(
                        {"$ref": "#/components/schemas/Health"},
                        "Starting: not all workers listen yet",
                    ),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
    }
    for service_id, service in sorted(services.items()):
        request = {
            "allOf": [
                refs["cds-request"],
                {
                    "type": "object",
                    "properties": {
                        "hook": {"const": service.hook},
                        "context": refs[service.context_schema],
                    },
                },
            ]
        }
        paths[f"/cds-services/{service_id}"] = {
            "post": {
                "operationId": f"call-{service.hook}",
                "summary": f"{service.hook} hook: {service.title}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request}},
                },
                "responses": {
                    "200": _json(refs["cds-response"], "Cards (possibly none)"),
                    **_errors(400, 401, 412, 413, 415, 503),
                },
            }
        }
        paths[f"/cds-services/{service_id}/feedback"] = {
            "post": {
                "operationId": f"feedback-{service.hook}",
                "summary": f"Feedback on {service_id} cards",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs["feedback-request"]}},
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/FeedbackReceipt"}, "Stored"),
                    **_errors(400, 401, 413, 415),
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bonecds CDS Hooks service",
            "version": version or "1",
            "description": (
                "CDS Hooks 2.0 services for bone-modifying agents in breast cancer. Every error is"
                " a FHIR OperationOutcome."
            ),
        },
        "paths": paths,
        # CDS Hooks endpoints need the client's JWT (unless the operator turned authentication off);
        # health does not.
        "security": [{"cdsClientJwt": []}],
        "components": {
            "securitySchemes": {
                "cdsClientJwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "CDS Hooks 2.0 client JWT (ES384 or RS384), aud = the endpoint URL, one use"
                        " per jti"
                    ),
                }
            },
            "schemas": components,
            "responses": {
                f"Error{code}": _json(refs["operation-outcome"], text)
                for code, text in ERRORS.items()
            },
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Response:
    extensions = current_app.extensions
    if "bonecds-openapi" not in extensions:
        runtime = extensions["bonecds"]
        extensions["bonecds-openapi"] = orjson.dumps(
            build_openapi(runtime.services, software_version())
        )
    return Response(extensions["bonecds-openapi"], mimetype="application/json")
