"""The CDS services this package offers, built from one knowledge version."""
from __future__ import annotations

from typing import Any

from hooks.knowledge import Knowledge
from hooks.order_sign import OrderSelectService, OrderSignService
from hooks.patient_view import PatientViewService


def build_services(knowledge: Knowledge) -> list[Any]:
    return [OrderSignService(knowledge), OrderSelectService(knowledge), PatientViewService(knowledge)]
