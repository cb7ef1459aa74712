"""The rule registry: ids written once, where a rule is declared; registry and knowledge checked
against each other at start-up (one line); the whole rule, scope check included, inside the never-
silent guard; the completeness card independent of its place in the registry; scopes that name an
ingredient or a formulation."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from hooks.cards import Finding
from hooks.knowledge import KnowledgeError, build_knowledge, load_knowledge
from hooks.orders import find_bone_agent_orders
from hooks.rules.context import kinds_in_scope, order_kinds
from hooks.rules.registry import ORDER_RULES, REVIEW_RULES, check_registry
from hooks.rules.rule import Rule, rule, run_rules
from hooks.services import build_services

ROOT = Path(__file__).resolve().parents[2]
BONECDS = str(Path(sys.executable).with_name("bonecds"))
KNOWLEDGE = load_knowledge()
SIGN = "/cds-services/bonecds-order-sign"


def test_every_registered_rule_carries_its_id_from_the_registration():
    assert all(isinstance(entry, Rule) for entry in ORDER_RULES + REVIEW_RULES)
    assert [entry.rule_id for entry in ORDER_RULES if entry.after_all] == ["record-incomplete"]
    check_registry(KNOWLEDGE)  # the bundled knowledge and the registry agree


def test_a_registered_rule_without_a_knowledge_entry_is_refused_in_one_line():
    @rule("aminoglycoside-with-zoledronic-acid")
    def aminoglycoside(ctx):
        return None

    with pytest.raises(KnowledgeError) as raised:
        check_registry(KNOWLEDGE, ORDER_RULES + (aminoglycoside,))
    message = str(raised.value)
    assert "\n" not in message and "'aminoglycoside-with-zoledronic-acid'" in message
    assert "has no entry in the knowledge file's rules" in message


def test_a_knowledge_rule_no_code_registers_refuses_to_start(tmp_path):
    raw = copy.deepcopy(KNOWLEDGE.raw)
    raw["rules"]["aminoglycoside-with-zoledronic-acid"] = copy.deepcopy(raw["rules"]["calcium-low"])
    with pytest.raises(
        KnowledgeError, match=r"at rules\.aminoglycoside-with-zoledronic-acid: no registered rule"
    ):
        build_services(build_knowledge(raw))
    knowledge = tmp_path / "knowledge.json"
    knowledge.write_text(json.dumps(raw))
    env = {
        **os.environ,
        "BONECDS_AUTH": "off",
        "BONECDS_KNOWLEDGE_FILE": str(knowledge),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    result = subprocess.run(
        [BONECDS, "check-config", "--no-database"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"BONECDS_KNOWLEDGE_FILE {knowledge}: at rules.aminoglycoside-with-zoledronic-acid: no"
        " registered rule runs it" in result.stderr
    )


def test_a_rule_without_a_knowledge_entry_answers_a_card_not_a_500(client, service, caplog):
    """The scope check runs inside the guard: a rule that slipped past the start-up check cannot
    fail the call."""

    def never(ctx):
        raise AssertionError("out of scope or not, the check is never reached")

    service.rules = (("no-such-rule", never),) + tuple(service.rules)
    s = scenario("dose-adjust-first-dose")
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
    )
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    errors = [
        c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] == "rule-error"
    ]
    assert len(errors) == 1 and "no-such-rule" in errors[0]["summary"]
    assert "KeyError" in caplog.text


def test_the_completeness_card_does_not_depend_on_its_place_in_the_registry(client, service):
    s = scenario("dose-adjust-first-dose")
    keys = [
        "patient",
        "renal",
        "weight",
        "vitaminD",
        "medications",
        "conditions",
    ]  # calcium and others not sent
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
        prefetch_keys=keys,
    )

    def cards() -> list[tuple[str, str, str]]:
        answer = client.post(SIGN, json=body).get_json()["cards"]
        return [(c["source"]["topic"]["code"], c["summary"], c["detail"]) for c in answer]

    last = cards()
    assert "record-incomplete" in [code for code, _, _ in last]
    completeness = [r for r in service.rules if r.rule_id == "record-incomplete"]
    service.rules = tuple(completeness) + tuple(
        r for r in service.rules if r.rule_id != "record-incomplete"
    )
    assert cards() == last


def test_after_all_rules_run_last_and_see_what_the_others_decided():
    class Context:
        rule_id = ""

        def __init__(self) -> None:
            self.decided: set[str] = set()
            self.reported_unavailable: set[str] = set()

        def in_scope(self, rule_id: str) -> bool:
            return True

        def rule_failed(self, rule_id: str) -> Finding:
            return Finding("rule-error", "warning", rule_id, "", ())

    seen: list[set[str]] = []

    @rule("summary", after_all=True)
    def summary(ctx):
        seen.append(set(ctx.decided))
        return None

    @rule("first")
    def first(ctx):
        return Finding(ctx.rule_id, "info", "first", "", ())

    found = run_rules((summary, first), Context())
    assert [f.rule_id for f in found] == ["first"] and seen == [{"first"}]


@pytest.mark.parametrize(
    "only_for, in_scope",
    [
        ((), True),
        (("zoledronic-acid",), True),
        (("zoledronic-acid-4mg",), True),
        (("denosumab",), False),
        (("pamidronate", "zoledronic-acid-4mg"), True),
        (("pamidronate-iv",), False),
    ],
)
def test_a_scope_can_name_an_ingredient_or_a_formulation(only_for, in_scope):
    s = scenario("dose-adjust-first-dose")
    order = find_bone_agent_orders(s.draft_orders, KNOWLEDGE)[0]
    assert order.ingredient == "zoledronic-acid" and order.formulation is not None
    assert order.formulation.id == "zoledronic-acid-4mg"
    kinds = order_kinds(order, KNOWLEDGE)
    assert kinds_in_scope(order, kinds, ["parenteral"], only_for) is in_scope
    assert kinds_in_scope(order, kinds, ["oral-bisphosphonate"], only_for) is False


def test_only_for_names_a_known_ingredient_or_formulation():
    raw = copy.deepcopy(KNOWLEDGE.raw)
    raw["rules"]["calcium-low"]["only_for"] = ["zoledronate"]
    with pytest.raises(
        KnowledgeError,
        match=r"rules\.calcium-low\.only_for\[0\]: unknown ingredient or formulation",
    ):
        build_knowledge(raw)
