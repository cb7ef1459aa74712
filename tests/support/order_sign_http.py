"""Helpers for rule tests through the whole HTTP path: a frozen-clock app, a poster, prepared
patients, card lookups."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from fixtures.builder import ANCHOR_INSTANT, PatientBuilder, draft_orders, medication_request
from fixtures.prefetch import hook_request, transaction_resources
from service import create_app
from service.config import Settings

SERVICE_ID = "bonecds-order-sign"
_ids = itertools.count(1)

Post = Callable[..., list[dict]]


def frozen_app(tmp_path_factory: pytest.TempPathFactory):
    """An app whose clock stands at the fixtures' anchor instant, with a throw-away feedback
    database."""
    tmp = tmp_path_factory.mktemp("rules")
    return create_app(
        Settings(database_url=f"sqlite:///{tmp}/t.db", frozen_now=ANCHOR_INSTANT, auth="off")
    )


def poster(app) -> Post:
    """post(patient, *orders, prefetch_keys=None) -> cards; prefetch filled from the patient's
    resources (None = all)."""
    client = app.test_client()
    service = app.extensions["bonecds"].services[SERVICE_ID]

    def post(
        patient: PatientBuilder, *orders: dict, prefetch_keys: list[str] | None = None
    ) -> list[dict]:
        body = hook_request(
            service,
            patient.patient_id,
            draft_orders(*orders),
            resources=transaction_resources(patient.transaction()),
            prefetch_keys=prefetch_keys,
        )
        response = client.post(f"/cds-services/{SERVICE_ID}", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["cards"]

    return post


def rules(cards: list[dict]) -> dict[str, dict]:
    """Cards by rule id (each rule gives at most one card per order, so one order gives a unique
    mapping)."""
    found = {card["source"]["topic"]["code"]: card for card in cards}
    assert len(found) == len(cards), "more than one card for the same rule"
    return found


def actions(card: dict, kind: str | None = None) -> list[dict]:
    return [
        a
        for s in card.get("suggestions", [])
        for a in s["actions"]
        if kind is None or a["type"] == kind
    ]


def new_patient(prefix: str, *, sex: str = "female", age: int = 64, **extra: Any) -> PatientBuilder:
    return PatientBuilder(f"{prefix}-t{next(_ids)}-pt", sex=sex, age=age, **extra)


def prepared(
    p: PatientBuilder,
    *,
    calcium: bool = True,
    supplements: bool = True,
    dental: bool = True,
    renal: bool = True,
) -> PatientBuilder:
    """Everything a well-prepared order needs on record (each part can be left out to test the rule
    that needs it)."""
    if supplements:
        p.medication("calcium-vitamin-d", 90, status="active", route="oral", every=(1, "d"))
    if dental:
        p.dental_exam(60)
    if calcium:
        p.calcium(5, 9.4, albumin=4.1)
    if renal:
        p.creatinine(5, 0.8).weight(5, 70)
    return p


def metastatic(p: PatientBuilder) -> PatientBuilder:
    return p.condition("breast-cancer").condition("bone-metastasis")


def early(p: PatientBuilder) -> PatientBuilder:
    return p.condition("breast-cancer")


def order(
    p: PatientBuilder,
    key: str = "zoledronic-acid-4mg",
    *,
    dose_mg: float | None = 4,
    route: str | None = "intravenous",
    every: tuple[float, str] | None = (12, "wk"),
    infusion_minutes: float | None = None,
    suffix: str = "draft",
) -> dict:
    return medication_request(
        f"{p.patient_id}-{suffix}",
        p.patient_id,
        key,
        dose_mg=dose_mg,
        route=route,
        every=every,
        infusion_minutes=infusion_minutes,
    )


def denosumab_order(p: PatientBuilder, strength: int = 120, **extra: Any) -> dict:
    every = (4, "wk") if strength == 120 else (6, "mo")
    extra.setdefault("every", every)
    return order(p, f"denosumab-{strength}mg", dose_mg=strength, route="subcutaneous", **extra)


def oral_order(
    p: PatientBuilder,
    key: str = "alendronate",
    dose_mg: float = 70,
    every: tuple[float, str] = (1, "wk"),
    **extra: Any,
) -> dict:
    return order(p, key, dose_mg=dose_mg, route="oral", every=every, **extra)
