"""Checks the FHIR test-server harness and the fixture loader against a real server, and the date
shifting they rely on."""

from __future__ import annotations

import json
import socket
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from fixtures.dates import FIXTURE_ANCHOR_DATE, days_between, shift_date_value, shift_dates
from fixtures.load import FixtureLoadError, check_bundle, load_fixtures, main
from tests.support.fhir_server.harness import FhirServer, fhir_server_from_environment

CREATININE = "http://loinc.org|2160-0"
PATIENT_ID = "hx-pat-1"
# Deliberately mixed precisions and zones, listed oldest first.
CREATININE_DATES = {
    "hx-crea-1": "2026-01-05",
    "hx-crea-2": "2026-06-20T08:30:00Z",
    "hx-crea-3": "2026-10-01T07:45:00.123+02:00",
}
NEWEST_FIRST = ["hx-crea-3", "hx-crea-2", "hx-crea-1"]


def _put(resource: dict) -> dict:
    return {
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def _creatinine(obs_id: str, patient_id: str, when: str, mg_dl: float) -> dict:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "2160-0",
                    "display": "Creatinine [Mass/volume] in Serum or Plasma",
                }
            ]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": mg_dl,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    }


def _patient_bundle() -> dict:
    entries = [
        _put(
            {
                "resourceType": "Patient",
                "id": PATIENT_ID,
                "gender": "female",
                "birthDate": "1961-03-04",
            }
        )
    ]
    for value, (obs_id, when) in enumerate(CREATININE_DATES.items(), start=8):
        entries.append(_put(_creatinine(obs_id, PATIENT_ID, when, value / 10)))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _medication_bundle() -> dict:
    order = {
        "resourceType": "MedicationRequest",
        "id": "hx-medreq-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "77655",
                    "display": "zoledronic acid",
                }
            ]
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": "2026-10-14",
    }
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_put(order)]}


def _client(server: FhirServer, *, with_token: bool = True) -> httpx.Client:
    headers = {"Accept": "application/fhir+json", **(server.auth_headers() if with_token else {})}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0)


def _ids(searchset: dict, resource_type: str) -> list[str]:
    # Servers may add OperationOutcome entries (search.mode = outcome), so count only the type asked
    # for.
    return [
        entry["resource"]["id"]
        for entry in searchset.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == resource_type
    ]


def _next_link(searchset: dict) -> str | None:
    return next(
        (link["url"] for link in searchset.get("link", []) if link.get("relation") == "next"), None
    )


@pytest.fixture(scope="module")
def loaded(fhir_server: FhirServer) -> list[str]:
    return load_fixtures(
        fhir_server.base_url,
        fhir_server.token,
        [_patient_bundle(), _medication_bundle()],
        names=["hx-patient", "hx-medication"],
    )


# --- against the server ---------------------------------------------------------------------------


@pytest.mark.integration
def test_loader_reports_every_bundle(loaded: list[str]) -> None:
    assert loaded == ["hx-patient", "hx-medication"]


@pytest.mark.integration
def test_loader_prints_only_names_and_counts(
    fhir_server: FhirServer, capsys: pytest.CaptureFixture[str]
) -> None:
    load_fixtures(
        fhir_server.base_url, fhir_server.token, [_patient_bundle()], names=["hx-patient"]
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "loaded hx-patient (4 entries)"


@pytest.mark.integration
def test_default_names_come_from_bundle_ids(fhir_server: FhirServer) -> None:
    bundle = {**_medication_bundle(), "id": "hx-named"}
    assert load_fixtures(
        fhir_server.base_url, fhir_server.token, [bundle, _medication_bundle()]
    ) == ["hx-named", "bundle-2"]


@pytest.mark.integration
def test_patient_read_with_token(fhir_server: FhirServer, loaded: list[str]) -> None:
    with _client(fhir_server) as client:
        response = client.get(f"/Patient/{PATIENT_ID}")
    assert response.status_code == 200
    assert response.json()["id"] == PATIENT_ID


@pytest.mark.integration
def test_patient_read_without_token_is_401(fhir_server: FhirServer, loaded: list[str]) -> None:
    if fhir_server_from_environment() is not None:
        pytest.skip(
            "the server comes from FHIR_BASE_URL; HAPI FHIR's default image does not enforce tokens"
        )
    with _client(fhir_server, with_token=False) as client:
        assert client.get(f"/Patient/{PATIENT_ID}").status_code == 401
        assert (
            client.get(
                f"/Patient/{PATIENT_ID}", headers={"Authorization": "Bearer wrong"}
            ).status_code
            == 401
        )
        # CDS clients discover the server before authenticating, so the CapabilityStatement stays
        # public.
        assert client.get("/metadata").status_code == 200


@pytest.mark.integration
def test_newest_creatinine_only(fhir_server: FhirServer, loaded: list[str]) -> None:
    with _client(fhir_server) as client:
        response = client.get(
            "/Observation",
            params={"patient": PATIENT_ID, "code": CREATININE, "_sort": "-date", "_count": "1"},
        )
    assert response.status_code == 200
    searchset = response.json()
    assert _ids(searchset, "Observation") == [NEWEST_FIRST[0]]
    assert searchset["entry"][0]["resource"]["valueQuantity"]["code"] == "mg/dL"


@pytest.mark.integration
def test_paging_through_next_links_returns_all_newest_first(
    fhir_server: FhirServer, loaded: list[str]
) -> None:
    seen: list[str] = []
    with _client(fhir_server) as client:
        response = client.get(
            "/Observation",
            params={"patient": PATIENT_ID, "code": CREATININE, "_sort": "-date", "_count": "1"},
        )
        for _ in range(10):  # a server that keeps offering "next" must not hang the test
            assert response.status_code == 200
            page = response.json()
            seen += _ids(page, "Observation")
            url = _next_link(page)
            if url is None:
                break
            # Followed verbatim: HAPI's page links (_getpages=...) cannot be rebuilt from the query.
            response = client.get(url)
    assert seen == NEWEST_FIRST


@pytest.mark.integration
def test_medication_request_loaded(fhir_server: FhirServer, loaded: list[str]) -> None:
    with _client(fhir_server) as client:
        response = client.get(
            "/MedicationRequest", params={"patient": PATIENT_ID, "status": "active"}
        )
    assert response.status_code == 200
    assert _ids(response.json(), "MedicationRequest") == ["hx-medreq-1"]


@pytest.mark.integration
def test_shifted_load_moves_effective_date_time(fhir_server: FhirServer) -> None:
    patient = {"resourceType": "Patient", "id": "hx-pat-2", "gender": "female"}
    observation = _creatinine("hx-crea-shift", "hx-pat-2", "2026-10-10T09:15:00+01:00", 0.9)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_put(patient), _put(observation)],
    }
    assert load_fixtures(
        fhir_server.base_url, fhir_server.token, [bundle], shift_days=10, names=["hx-shift"]
    ) == ["hx-shift"]
    with _client(fhir_server) as client:
        response = client.get("/Observation/hx-crea-shift")
    assert response.status_code == 200
    assert response.json()["effectiveDateTime"] == "2026-10-20T09:15:00+01:00"
    # The caller's bundle is not modified by the shift.
    assert bundle["entry"][1]["resource"]["effectiveDateTime"] == "2026-10-10T09:15:00+01:00"


@pytest.mark.integration
def test_rejected_bundle_raises(fhir_server: FhirServer) -> None:
    observation = _creatinine("hx-crea-bad", PATIENT_ID, "2026-10-10", 1.0)
    observation["status"] = {"not": "a code"}  # structurally invalid for every FHIR server
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_put(observation)]}
    with pytest.raises(FixtureLoadError, match=r"hx-bad \(1 entries\): HTTP 4\d\d"):
        load_fixtures(fhir_server.base_url, fhir_server.token, [bundle], names=["hx-bad"])


@pytest.mark.integration
def test_cli_rebases_and_loads_only_the_named_scenarios(
    fhir_server: FhirServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "hx-pat-cli",
        "gender": "female",
        "birthDate": "1958-07-09",
    }
    observation = _creatinine("hx-crea-cli", "hx-pat-cli", "2026-10-15T10:00:00Z", 1.1)
    (tmp_path / "hx-cli.json").write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [_put(patient), _put(observation)],
            }
        )
    )
    (tmp_path / "hx-not-selected.json").write_text("not even JSON")
    if fhir_server.token:
        monkeypatch.setenv("FHIR_TOKEN", fhir_server.token)  # keeps the token off the command line
    else:
        monkeypatch.delenv("FHIR_TOKEN", raising=False)
    status = main(
        [
            "--fhir-base",
            fhir_server.base_url,
            "--rebase-dates",
            "--anchor",
            "2026-10-05",
            "--only",
            "hx-cli",
            "--scenario-dir",
            str(tmp_path),
            "--wait",
            "5",
        ]
    )
    err = capsys.readouterr().err
    assert status == 0, err
    assert "loaded hx-cli (2 entries)" in err
    assert "1958" not in err and "hx-not-selected" not in err
    if fhir_server.token:
        assert fhir_server.token not in err
    with _client(fhir_server) as client:
        response = client.get("/Observation/hx-crea-cli")
    # Written ten days after the anchor, so after rebasing it lies ten days after today.
    assert response.json()["effectiveDateTime"] == f"{date.today() + timedelta(days=10)}T10:00:00Z"


def test_cli_fails_with_a_message_when_nothing_can_be_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "--fhir-base",
                "http://127.0.0.1:9/fhir",
                "--scenario-dir",
                str(tmp_path),
                "--wait",
                "0",
            ]
        )
        == 1
    )
    assert "no scenario bundles" in capsys.readouterr().err
    (tmp_path / "one.json").write_text(json.dumps(_medication_bundle()))
    assert (
        main(
            [
                "--fhir-base",
                "http://127.0.0.1:9/fhir",
                "--scenario-dir",
                str(tmp_path),
                "--only",
                "two",
                "--wait",
                "0",
            ]
        )
        == 1
    )
    assert "unknown scenario(s): two" in capsys.readouterr().err
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        unused = f"http://127.0.0.1:{sock.getsockname()[1]}/fhir"
    assert main(["--fhir-base", unused, "--scenario-dir", str(tmp_path), "--wait", "0"]) == 1
    assert "did not answer" in capsys.readouterr().err


# --- bundle checks (no server) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e["request"].update(method="POST"), "must be PUT"),
        (lambda e: e["request"].update(url="Patient/other-id"), "does not match"),
        (
            lambda e: (e["request"].update(url="Patient/12345"), e["resource"].update(id="12345")),
            "all digits",
        ),
    ],
)
def test_check_bundle_rejects_entries_hapi_would_refuse(change, message) -> None:
    bundle = _patient_bundle()
    change(bundle["entry"][0])
    with pytest.raises(FixtureLoadError, match=message):
        check_bundle("x", bundle)


def test_check_bundle_rejects_non_transactions() -> None:
    with pytest.raises(FixtureLoadError, match="not a FHIR transaction Bundle"):
        check_bundle("x", {**_patient_bundle(), "type": "batch"})


# --- fixtures.dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, days, expected",
    [
        ("2026-10-15", 10, "2026-10-25"),
        ("2026-10-15", -15, "2026-09-30"),
        ("2024-02-28", 1, "2024-02-29"),
        ("2026-10-15T23:59:59Z", 1, "2026-10-16T23:59:59Z"),
        ("2026-10-15T08:30:00.123+02:00", 10, "2026-10-25T08:30:00.123+02:00"),
        ("2026-10-15T08:30:00-05:00", -365, "2025-10-15T08:30:00-05:00"),
        ("2026-10-15T08:30:00.000000Z", 0, "2026-10-15T08:30:00.000000Z"),
        ("2026-10", 20, "2026-10"),
        ("2026-10", 31, "2026-11"),
        ("2026-12", 31, "2027-01"),
        ("2026-03", -1, "2026-02"),
        ("2026", 10, "2026"),
        ("2026", 365, "2027"),
        ("2026", -1, "2025"),
    ],
)
def test_shift_date_value_keeps_precision_and_zone(value: str, days: int, expected: str) -> None:
    assert shift_date_value(value, days) == expected


@pytest.mark.parametrize(
    "value", ["unknown", "2026-10-15 08:30", "15/10/2026", "2026-1-5", "", "20261015"]
)
def test_shift_date_value_leaves_other_strings_alone(value: str) -> None:
    assert shift_date_value(value, 10) == value


def test_shift_dates_moves_date_elements_only() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "2026-10-15",
        "meta": {"lastUpdated": "2026-10-15T10:00:00Z"},
        "identifier": [{"system": "urn:oid:1.2.3", "value": "2026-10-15"}],
        "code": {"coding": [{"system": "http://example.org/dates", "code": "2026-10"}]},
        "subject": {"reference": "Patient/2026-01-01"},
        "effectiveDateTime": "2026-10-15T10:00:00+02:00",
        "issued": "2026-10-15T11:00:00.000Z",
        "valueString": "2026-10-15",
        "note": [{"text": "taken 2026-10-15"}],
        "extension": [{"url": "http://example.org/2026-10-15", "valueDateTime": "2026-10"}],
    }
    shifted = shift_dates(resource, 3)
    assert shifted["effectiveDateTime"] == "2026-10-18T10:00:00+02:00"
    assert shifted["issued"] == "2026-10-18T11:00:00.000Z"
    assert shifted["meta"]["lastUpdated"] == "2026-10-18T10:00:00Z"
    assert shifted["extension"][0]["valueDateTime"] == "2026-10"
    assert shifted["extension"][0]["url"] == "http://example.org/2026-10-15"
    for unchanged in ("id", "identifier", "code", "subject", "valueString", "note", "resourceType"):
        assert shifted[unchanged] == resource[unchanged]


def test_shift_dates_walks_bundles_periods_and_timing_events() -> None:
    order = {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "authoredOn": "2026-10-01",
        "dosageInstruction": [
            {
                "timing": {
                    "event": ["2026-10-16T09:00:00Z", "2026-11-16T09:00:00Z"],
                    "repeat": {
                        "boundsPeriod": {"start": "2026-10-16", "end": "2027-10"},
                        "count": 12,
                    },
                }
            }
        ],
        "dispenseRequest": {"validityPeriod": {"start": "2026-10-01T00:00:00+00:00"}},
    }
    patient = {"resourceType": "Patient", "id": "p-1", "birthDate": "1961"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:2026-10-15",
                "resource": patient,
                "request": {"method": "PUT", "url": "Patient/p-1"},
            },
            {"resource": order, "request": {"method": "PUT", "url": "MedicationRequest/mr-1"}},
        ],
    }
    shifted = shift_dates(bundle, -30)
    new_order = shifted["entry"][1]["resource"]
    assert new_order["authoredOn"] == "2026-09-01"
    timing = new_order["dosageInstruction"][0]["timing"]
    assert timing["event"] == ["2026-09-16T09:00:00Z", "2026-10-17T09:00:00Z"]
    assert timing["repeat"] == {
        "boundsPeriod": {"start": "2026-09-16", "end": "2027-09"},
        "count": 12,
    }
    assert new_order["dispenseRequest"]["validityPeriod"]["start"] == "2026-09-01T00:00:00+00:00"
    assert shifted["entry"][0]["resource"]["birthDate"] == "1960"
    assert shifted["entry"][0]["fullUrl"] == "urn:uuid:2026-10-15"
    assert shifted["entry"][0]["request"] == {"method": "PUT", "url": "Patient/p-1"}


def test_shift_dates_returns_a_deep_copy() -> None:
    resource = {
        "resourceType": "Condition",
        "id": "c-1",
        "onsetDateTime": "2026-10-01",
        "evidence": [{"detail": [{"reference": "Observation/o-1"}]}],
    }
    shifted = shift_dates(resource, 5)
    assert resource["onsetDateTime"] == "2026-10-01"
    assert shifted["onsetDateTime"] == "2026-10-06"
    shifted["evidence"][0]["detail"].append({"reference": "Observation/o-2"})
    assert resource["evidence"][0]["detail"] == [{"reference": "Observation/o-1"}]
    copy = shift_dates(resource, 0)
    assert copy == resource and copy is not resource


def test_shift_dates_rejects_impossible_calendar_dates_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="birthDate") as caught:
        shift_dates({"resourceType": "Patient", "birthDate": "1961-02-30"}, 1)
    assert "1961" not in str(caught.value)


def test_days_between() -> None:
    assert FIXTURE_ANCHOR_DATE == date(2026, 10, 15)
    assert days_between(FIXTURE_ANCHOR_DATE, date(2026, 10, 25)) == 10
    assert days_between(FIXTURE_ANCHOR_DATE, date(2026, 10, 15)) == 0
    assert days_between(FIXTURE_ANCHOR_DATE, date(2027, 10, 15)) == 365
    assert days_between(FIXTURE_ANCHOR_DATE, date(2026, 9, 15)) == -30
