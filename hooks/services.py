"""The CDS services this package offers, built from one knowledge version whose rules match the rule
registry."""

from __future__ import annotations

from typing import Any

from hooks.knowledge import Knowledge
from hooks.order_sign import OrderSelectService, OrderSignService
from hooks.patient_view import PatientViewService
from hooks.rules.registry import check_registry


def build_services(knowledge: Knowledge) -> list[Any]:
    """The order-sign, order-select and patient-view services; KnowledgeError (one line) when the
    knowledge file's rules and the rule registry disagree."""
    check_registry(knowledge)
    return [
        OrderSignService(knowledge),
        OrderSelectService(knowledge),
        PatientViewService(knowledge),
    ]
