"""Card text a clinician reads in a few seconds, through the whole HTTP path: one source line and
no developer text (rule id and knowledge version travel in the card's extension), suggestion labels
that name the change, eGFR with its body-surface unit, CrCl with one decimal never rounded onto a
limit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from fixtures.builder import FIXTURE_ANCHOR_DATE, PatientBuilder
from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import all_scenarios
from hooks.knowledge import load_knowledge
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    early,
    metastatic,
    new_patient,
    oral_order,
    order,
    prepared,
    rules,
)

KNOWLEDGE = load_knowledge()
SOURCE_LABELS = {source.label for source in KNOWLEDGE.sources.values()}
TOMORROW = (FIXTURE_ANCHOR_DATE + timedelta(days=1)).isoformat()
# an eGFR number followed by a bare mL/min (without /1.73 m²)
EGFR_WITHOUT_SURFACE = re.compile(r"eGFR [<>=≤≥]*\d+(?:\.\d+)? mL/min(?!/1\.73)")
UPDATE_LABEL_STARTS = (
    "Reduce to ",
    "Increase to ",
    "Change dose to ",
    "Change to ",
    "Start on or after ",
    "Infuse over ",
)


def weight_for(crcl: float, *, age: int, creatinine_mg_dl: float) -> float:
    """The body weight (kg) that makes Cockcroft-Gault give `crcl` for a woman."""
    return crcl * 72 * creatinine_mg_dl / ((140 - age) * 0.85)


def with_crcl(p: PatientBuilder, crcl: float, age: int = 64) -> PatientBuilder:
    return p.creatinine(2, 1.0).weight(2, weight_for(crcl, age=age, creatinine_mg_dl=1.0))


def za_patient(crcl: float | None = None) -> PatientBuilder:
    """Bone metastases, prepared for zoledronic acid except the renal part when `crcl` is given."""
    p = metastatic(prepared(new_patient("cardtext"), renal=crcl is None))
    return with_crcl(p, crcl) if crcl is not None else p


def labels(card: dict) -> list[str]:
    return [s["label"] for s in card.get("suggestions", [])]


def text(card: dict) -> str:
    return f"{card['summary']}\n{card['detail']}"


# Every card of every scenario


@pytest.fixture(scope="module")
def scenario_cards(frozen_order_sign_app) -> list[tuple[str, dict]]:
    client = frozen_order_sign_app.test_client()
    found = []
    for scn in all_scenarios():
        service = frozen_order_sign_app.extensions["bonecds"].services[scn.service_id]
        body = scenario_request(
            service, scn, resources=transaction_resources(scn.patient.transaction())
        )
        response = client.post(f"/cds-services/{scn.service_id}", json=body)
        assert response.status_code == 200, scn.name
        found += [(scn.name, card) for card in response.get_json()["cards"]]
    assert found
    return found


def test_no_developer_text_in_any_card(scenario_cards):
    for name, card in scenario_cards:
        rule = card["source"]["topic"]["code"]
        assert "knowledge version" not in text(card).lower(), name
        # what the team still has to check before go-live belongs in the knowledge, not on a card
        assert not re.search(r"go-live|to be verified", text(card), re.I), name
        links = " ".join(link["label"] for link in card.get("links", []))
        assert not re.search(r"go-live|to be verified", links, re.I), name
        assert not re.search(rf"(?<![\w-]){re.escape(rule)}(?![\w-])", text(card)), (name, rule)
        assert "**Source:**" not in card["detail"] and "**Evidence:**" not in card["detail"], name
        # the rules catalog's row ids (L19, G5, seed 002) mean nothing to a clinician
        catalog_ids = re.findall(r"(?<![\w-])(?:[LG]\d{1,2}|seed \d{3})\b", text(card))
        assert catalog_ids == [], (name, catalog_ids)


def test_each_card_has_one_source_line_and_links_the_others(scenario_cards):
    for name, card in scenario_cards:
        lines = [line for line in card["detail"].splitlines() if line.startswith("Source:")]
        cites_literature = card["source"]["label"] in SOURCE_LABELS
        assert len(lines) == (1 if cites_literature else 0), (name, lines)
        if cites_literature:
            assert card["detail"].endswith(lines[0]), name  # the last line
            assert len(lines[0]) <= 300, name
            assert not re.search(r"\((?:seed \d+|[LG]\d+)\)", lines[0]), (name, lines[0])
        linked = [link["url"] for link in card.get("links", [])]
        assert card["source"].get("url") not in linked, name  # the primary is not repeated
        assert len(linked) == len(set(linked)), name


def test_extension_carries_rule_and_knowledge_version(scenario_cards):
    for name, card in scenario_cards:
        assert card["extension"] == {
            "bonecds": {
                "rule": card["source"]["topic"]["code"],
                "knowledgeVersion": KNOWLEDGE.version,
            }
        }, name
        assert card["source"]["topic"]["system"] == KNOWLEDGE.systems["rule"]
        assert card["source"]["topic"]["display"]


def test_labels_are_short_and_updates_name_the_change(scenario_cards):
    for name, card in scenario_cards:
        for suggestion in card.get("suggestions", []):
            label = suggestion["label"]
            assert len(label) < 80, (name, label)
            kinds = {a["type"] for a in suggestion["actions"]}
            if kinds == {"update"}:
                assert label.startswith(UPDATE_LABEL_STARTS), (name, label)
            assert label != "Change the timing", name


def test_no_egfr_written_in_plain_ml_min(scenario_cards):
    for name, card in scenario_cards:
        assert not EGFR_WITHOUT_SURFACE.search(text(card)), (name, text(card))
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                assert not EGFR_WITHOUT_SURFACE.search(action["description"]), name


def test_the_source_line_gives_the_guideline_grade(post):
    """Bone metastases with the adjuvant schedule: AGO 2024 with its level of evidence and grade, in
    one line, the guideline's link as the card's source."""
    p = za_patient()
    card = rules(post(p, order(p, every=(6, "mo"))))["metastatic-schedule-inappropriate"]
    (line,) = [x for x in card["detail"].splitlines() if x.startswith("Source:")]
    assert line.startswith("Source: AGO 2024 (guideline): ")
    assert "LoE 1a, GR A, AGO ++" in line and line.endswith(".")
    assert card["source"]["label"].startswith("AGO Breast Committee guideline 2024")
    assert "links" not in card  # one source: it is the card's source


def test_a_label_source_line_names_the_label(post):
    p = za_patient(crcl=21)
    card = rules(post(p, order(p)))["renal-contraindicated"]
    assert card["detail"].endswith("\n\nSource: Zometa PI (label).")
    assert card["source"]["label"] == KNOWLEDGE.sources["zometa-label"].label
    assert [link["label"] for link in card["links"]] == [KNOWLEDGE.sources["cockcroft-gault"].label]


# Suggestion labels name the change


@pytest.mark.parametrize("crcl, dose", [(55, 3.5), (45, 3.3), (35, 3)], ids=["55", "45", "35"])
def test_renal_dose_label_names_the_dose(post, crcl, dose):
    p = za_patient(crcl=crcl)
    card = rules(post(p, order(p)))["renal-dose-adjust"]
    assert labels(card) == [f"Reduce to {dose:g} mg"]
    (update,) = actions(card, "update")
    assert update["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": dose,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }


def test_dose_above_maximum_label(post):
    p = za_patient()
    draft = order(p, "pamidronate-90mg", dose_mg=91, every=(4, "wk"))
    assert labels(rules(post(p, draft))["dose-above-maximum"]) == ["Reduce to 90 mg"]


def test_pamidronate_dose_by_calcium_label(post):
    p = metastatic(new_patient("cardtext-pam")).condition("hypercalcemia", onset_days_ago=2)
    prepared(p, calcium=False).corrected_calcium(1, 13.6)
    found = rules(post(p, order(p, "pamidronate-90mg", dose_mg=60, every=None)))
    assert labels(found["pamidronate-hcm-dose"]) == ["Increase to 90 mg"]


@pytest.mark.parametrize(
    "key, mg, every, label, period",
    [
        ("alendronate", 70, (1, "d"), "Change to once weekly", (1, "wk")),
        ("risedronate", 150, (1, "wk"), "Change to once monthly", (1, "mo")),
    ],
    ids=["alendronate-daily", "risedronate-150-weekly"],
)
def test_oral_regimen_label_names_the_interval(post, key, mg, every, label, period):
    p = prepared(early(new_patient("cardtext-oral")))
    card = rules(post(p, oral_order(p, key, mg, every)))["oral-bp-regimen"]
    assert labels(card) == [label]
    repeat = actions(card, "update")[0]["resource"]["dosageInstruction"][0]["timing"]["repeat"]
    assert (repeat["period"], repeat["periodUnit"]) == period


def test_interval_labels_name_the_interval_or_the_date(post):
    p = za_patient()
    card = rules(post(p, order(p, every=(10, "d"))))["interval-too-short"]
    assert labels(card) == ["Change to every 4 weeks"]
    p = za_patient().medication("zoledronic-acid-4mg", 20)
    card = rules(post(p, order(p)))["interval-too-short"]
    assert labels(card) == [f"Start on or after {TOMORROW}"]
    repeat = actions(card, "update")[0]["resource"]["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["boundsPeriod"] == {"start": TOMORROW}


def test_hypercalcemia_label_is_a_single_dose(post):
    p = za_patient().condition("hypercalcemia", onset_days_ago=3).corrected_calcium(1, 12.6)
    card = rules(post(p, order(p, every=(1, "wk"))))["interval-too-short"]
    assert labels(card) == ["Change to a single dose"]


def test_infusion_label(post):
    p = za_patient()
    card = rules(post(p, order(p, infusion_minutes=10)))["infusion-too-fast"]
    assert labels(card) == ["Infuse over 15 minutes"]


def test_lab_order_labels_name_the_specimen(post):
    p = metastatic(prepared(new_patient("cardtext-labs"), calcium=False, renal=False))
    found = rules(post(p, order(p)))
    assert labels(found["renal-data-missing"])[0] == "Order serum creatinine"
    assert labels(found["calcium-data-missing"]) == ["Order serum calcium", "Order serum albumin"]


def test_regimen_and_delete_labels(post):
    p = metastatic(prepared(new_patient("cardtext-dmab"), renal=False))
    p.creatinine(1, 2.6).weight(1, 55)  # CrCl about 19: no zoledronic acid
    found = rules(post(p, denosumab_order(p, 60, every=(6, "mo"))))
    assert labels(found["metastatic-schedule-inappropriate"]) == [
        "Change to denosumab 120 mg SC every 4 weeks"
    ]
    p = za_patient(crcl=21)
    assert labels(rules(post(p, order(p)))["renal-contraindicated"]) == ["Remove this order"]


# eGFR with its unit; CrCl with one decimal, never onto the limit


@pytest.mark.parametrize(
    "egfr, rule", [(24, "renal-contraindicated"), (45, "renal-dose-adjust")], ids=["24", "45"]
)
def test_egfr_is_labelled_per_body_surface(post, egfr, rule):
    p = metastatic(prepared(new_patient("cardtext-egfr"), renal=False))
    p.creatinine(3, 1.2).egfr(3, egfr)  # no weight: no clearance, the eGFR stands in
    card = rules(post(p, order(p)))[rule]
    assert f"eGFR {egfr} mL/min/1.73 m² (not CrCl)" in card["summary"]
    assert f"eGFR {egfr} mL/min/1.73 m² on " in card["detail"]
    assert not EGFR_WITHOUT_SURFACE.search(text(card))


def test_egfr_in_a_suggestion_note_keeps_its_unit(post):
    """The regimen offered at eGFR 45 is written at the table dose; the note names the eGFR
    with its unit and as reported (45, not 45.0)."""
    p = metastatic(prepared(new_patient("cardtext-egfr-note"), renal=False))
    p.creatinine(3, 1.2).egfr(3, 45)
    card = rules(post(p, order(p, every=(6, "mo"))))["metastatic-schedule-inappropriate"]
    assert "the label dose for eGFR 45 mL/min/1.73 m² (not CrCl)" in card["detail"]


@pytest.mark.parametrize("crcl, shown", [(29.6, "29.6"), (29.96, "29.96")], ids=["29.6", "29.96"])
def test_crcl_below_the_floor_is_not_rounded_onto_it(post, crcl, shown):
    p = za_patient(crcl=crcl)
    card = rules(post(p, order(p)))["renal-contraindicated"]
    assert card["summary"].startswith(f"CrCl {shown} mL/min is below the limit of 30 mL/min")
    assert f"**CrCl {shown} mL/min**" in card["detail"]
    assert "CrCl 30 " not in text(card) and "CrCl 30.0" not in text(card)


def test_crcl_in_a_suggestion_note_is_not_rounded_onto_a_band_edge(post):
    """CrCl 49.96 is in the 3.3 mg band (40 to under 50): the offered regimen's note says 49.96, not
    50.0."""
    p = za_patient(crcl=49.96)
    card = rules(post(p, order(p, every=(6, "mo"))))["metastatic-schedule-inappropriate"]
    assert "the label dose for CrCl 49.96 mL/min" in card["detail"]
    assert "50.0" not in card["detail"]
    assert labels(card)[0] == "Change to zoledronic acid 3.3 mg IV every 12 weeks"


def test_a_pamidronate_withhold_card_cites_the_pamidronate_label(scenario_cards):
    """The creatinine-rise withhold rule is in the Zometa and the Aredia labels alike: each card
    cites the label of the drug it is about."""
    found = {
        name: card
        for name, card in scenario_cards
        if card["source"]["topic"]["code"] == "renal-deterioration"
    }
    assert found["renal-pamidronate-creatinine-rise-0.5"]["detail"].endswith(
        "Source: Aredia PI (label)."
    )
    zoledronic = [c for n, c in found.items() if "zoledronic acid" in c["summary"]]
    assert zoledronic and all(
        c["detail"].endswith("Source: Zometa PI (label).") for c in zoledronic
    )
