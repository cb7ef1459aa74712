"""The `bonecds` command: `evaluate` runs a request file through the real service path and prints
the cards; `token`."""

from __future__ import annotations

import json

import jwt
import pytest
from jwt.algorithms import ECAlgorithm

from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import scenario
from hooks.knowledge import load_knowledge
from hooks.services import build_services
from service.cli import main
from tests.support.fhir_server.faulty import FaultyFhirServer


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BONECDS_NOW", "2026-10-15T10:00:00Z")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.sqlite3")
    monkeypatch.setenv("BONECDS_DEV_KEY_FILE", str(tmp_path / "dev-key.json"))
    return tmp_path


def request_file(tmp_path, name: str) -> str:
    s = scenario(name)
    service = {x.id: x for x in build_services(load_knowledge())}[s.service_id]
    path = tmp_path / f"{name}.json"
    path.write_text(
        json.dumps(
            scenario_request(service, s, resources=transaction_resources(s.patient.transaction()))
        )
    )
    return str(path)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("calcium-low", "[CRITICAL] Calcium 8.06 mg/dL is low"),
        (
            "review-bone-metastases-untreated",
            "-> Order zoledronic acid 4 mg IV every 12 weeks (recommended)",
        ),
        ("adjuvant-za-prepared", "No cards: nothing to say about this order."),
    ],
)
def test_evaluate_prints_the_cards_as_text(env, capsys, name, expected):
    assert main(["evaluate", request_file(env, name)]) == 0
    assert expected in capsys.readouterr().out


def test_evaluate_json_is_the_service_answer(env, capsys):
    assert main(["evaluate", "--json", request_file(env, "calcium-low")]) == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["calcium-low"]


def test_evaluate_reports_a_bad_request_and_an_unknown_hook(env, capsys):
    bad = env / "bad.json"
    bad.write_text(json.dumps({"hook": "order-sign", "hookInstance": "x", "context": {}}))
    assert main(["evaluate", str(bad)]) == 1
    assert capsys.readouterr().out.startswith("HTTP 400:")
    other = env / "other.json"
    other.write_text(json.dumps({"hook": "encounter-start"}))
    assert main(["evaluate", str(other)]) == 2


def test_token_is_a_development_jwt_for_the_endpoint(env, capsys):
    assert (
        main(["token", "--service", "bonecds-order-sign", "--base-url", "https://cds.example.org"])
        == 0
    )
    token = capsys.readouterr().out.strip()
    key = json.loads((env / "dev-key.json").read_text())
    claims = jwt.decode(
        token,
        ECAlgorithm.from_jwk(json.dumps(key)).public_key(),
        algorithms=["ES384"],
        audience="https://cds.example.org/cds-services/bonecds-order-sign",
    )
    assert claims["iss"] == "bonecds-dev" and claims["jti"]


@pytest.mark.parametrize(
    "name, hook, expected",
    [
        ("calcium-low", "order-sign", "[CRITICAL] Calcium 8.06 mg/dL is low"),
        (
            "review-bone-metastases-untreated",
            "patient-view",
            "[WARNING] Bone metastases without a bone-modifying agent",
        ),
    ],
)
def test_evaluate_reads_the_patient_from_a_fhir_server(env, capsys, name, hook, expected):
    """--fhir-base: no prefetch at all; the service reads every key from the server with the token
    given."""
    s = scenario(name)
    with FaultyFhirServer(transaction_resources(s.patient.transaction())) as server:
        argv = [
            "evaluate",
            "--fhir-base",
            server.base_url,
            "--patient",
            s.patient_id,
            "--hook",
            hook,
            "--token",
            "t-1",
        ]
        if s.draft_orders:
            draft = env / "draft.json"
            draft.write_text(json.dumps(s.draft_orders["entry"][0]["resource"]))
            argv += ["--draft", str(draft)]
        assert main(argv) == 0
        assert server.requests and all(seen.authorized for seen in server.requests)
    captured = capsys.readouterr()
    assert expected in captured.out
    assert f"reading patient {s.patient_id}" in captured.err


def test_the_software_version_is_shown_everywhere(app, capsys):
    """`bonecds --version`, /readyz, /openapi.json info.version and bonecds_build_info agree."""
    from service.version import software_version

    version = software_version()
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    knowledge = load_knowledge().version
    assert capsys.readouterr().out.strip() == f"bonecds {version} (knowledge {knowledge})"
    client = app.test_client()
    assert client.get("/readyz").get_json()["version"] == version
    assert client.get("/openapi.json").get_json()["info"]["version"] == version
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'bonecds_build_info{{knowledge="{knowledge}",version="{version}"}} 1.0' in metrics
