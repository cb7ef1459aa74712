"""A rule that crashes yields a card saying the check was not done; an internal failure is a 500
OperationOutcome, not a stack trace."""

from __future__ import annotations

from fixtures.prefetch import hook_request, scenario_request, transaction_resources
from fixtures.scenarios import scenario

SERVICE_URL = "/cds-services/bonecds-order-sign"


def test_crashing_rule_gives_a_warning_card_and_other_rules_still_run(client, service, caplog):
    def broken(ctx):
        # a message with record values must not reach the log
        raise ZeroDivisionError("Quill 1962-03-01")

    service.rules = (("renal-contraindicated", broken),) + tuple(
        r for r in service.rules if r[0] != "renal-contraindicated"
    )
    s = scenario("dose-adjust-first-dose")
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
    )
    cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    by_rule = {c["source"]["topic"]["code"]: c for c in cards}
    assert set(by_rule) == {"rule-error", "renal-dose-adjust"}
    assert by_rule["rule-error"]["indicator"] == "warning"
    assert "renal-contraindicated" in by_rule["rule-error"]["summary"]
    assert "ZeroDivisionError" in caplog.text and "Quill" not in caplog.text


def test_internal_failure_is_500_operation_outcome_without_details(client, service, app):
    def explode(*args, **kwargs):
        raise RuntimeError("secret detail")

    service.evaluate = explode
    s = scenario("dose-adjust-first-dose")
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
    )
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 500
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and "secret" not in response.get_data(
        as_text=True
    )


def test_crashing_review_rule_gives_a_warning_card_and_other_reviews_still_run(client, app, caplog):
    service = app.extensions["bonecds"].services["bonecds-patient-view"]

    def broken(ctx):
        raise KeyError("Kestrel")

    service.rules = (("review-denosumab-stopped", broken),) + tuple(
        r for r in service.rules if r[0] != "review-denosumab-stopped"
    )
    s = scenario("review-bone-metastases-untreated")
    body = scenario_request(service, s, resources=transaction_resources(s.patient.transaction()))
    cards = client.post("/cds-services/bonecds-patient-view", json=body).get_json()["cards"]
    by_rule = {c["source"]["topic"]["code"]: c for c in cards}
    assert set(by_rule) == {"rule-error", "review-bone-metastases-untreated"}
    assert "review-denosumab-stopped" in by_rule["rule-error"]["summary"]
    assert "KeyError" in caplog.text and "Kestrel" not in caplog.text
