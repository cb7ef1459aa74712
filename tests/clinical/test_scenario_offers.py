"""Every scenario's buttons: what each card's suggestions would order (drug, dose, timing; lab
codes; deletions) is what the scenario catalogue states, with full prefetch (the integration suite
repeats it through the FHIR server)."""

from __future__ import annotations

import pytest

from fixtures.offers import offers
from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import all_scenarios

SCENARIOS = all_scenarios()


@pytest.mark.parametrize("scn", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_offers_what_the_catalogue_states(scn, frozen_order_sign_app):
    client = frozen_order_sign_app.test_client()
    service = frozen_order_sign_app.extensions["bonecds"].services[scn.service_id]
    body = scenario_request(
        service, scn, resources=transaction_resources(scn.patient.transaction())
    )
    response = client.post(f"/cds-services/{scn.service_id}", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert offers(cards) == dict(scn.offers), scn.description


def test_every_card_of_every_scenario_is_stated():
    """The catalogue names the offers of every rule a scenario expects (an empty tuple: a card
    without buttons)."""
    for scn in SCENARIOS:
        assert sorted(dict(scn.offers)) == sorted({rule for rule, _ in scn.expected}), scn.name
