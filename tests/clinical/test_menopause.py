"""Menopausal status: every route to each value, and conflicting evidence, through the HTTP endpoint
(clock frozen) and on the facts the service builds.

Each patient has early breast cancer, a well-prepared record and a normal recent DXA, and is ordered
zoledronic acid 4 mg every 6 months: a patient who counts as postmenopausal gets no card at all;
pre- and perimenopausal patients get `adjuvant-no-benefit-premenopausal`, and an undocumented status
`menopausal-status-unknown`, whose detail shows the status line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from fixtures.builder import ANCHOR_INSTANT, ICD10CM, SNOMED, PatientBuilder
from hooks.assessments.menopause import MenopausalStatus, menopausal_status
from hooks.facts.build import build_facts
from hooks.knowledge import load_knowledge
from tests.support.order_sign_http import early, new_patient, order, prepared, rules

PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
NO_BENEFIT, UNKNOWN_CARD = "adjuvant-no-benefit-premenopausal", "menopausal-status-unknown"
CARD_FOR = {"premenopausal": NO_BENEFIT, "perimenopausal": NO_BENEFIT, "unknown": UNKNOWN_CARD}
Record = Callable[[PatientBuilder], object]
KNOWLEDGE = load_knowledge()


@dataclass
class BornOn(PatientBuilder):
    """A patient with an exact birth date (the builder's patients have their birthday on 1
    March)."""

    birth_date: str = ""

    def patient(self) -> dict:
        return {**super().patient(), "birthDate": self.birth_date}


def recode(
    p: PatientBuilder, system: str, code: str, display: str, field: str = "code"
) -> PatientBuilder:
    """Give the resource added last another coding (in `code`, or in `valueCodeableConcept` for an
    answer)."""
    p.resources[-1][field] = {
        "coding": [{"system": system, "code": code, "display": display}],
        "text": display,
    }
    return p


def condition_coded(system: str, code: str, display: str, **kw) -> Record:
    return lambda p: recode(p.condition("postmenopausal", **kw), system, code, display)


def procedure_coded(system: str, code: str, display: str) -> Record:
    return lambda p: recode(p.procedure("bilateral-oophorectomy", 900), system, code, display)


def amended(key: str, **changes) -> Record:
    """The condition `key`, then the last resource's fields changed (e.g. a status)."""
    return lambda p: p.condition(key) and p.resources[-1].update(changes)


def on(*keys: str, status: str = "active") -> Record:
    def record(p: PatientBuilder) -> None:
        for key in keys:
            p.medication(key, 60, status=status)

    return record


def both(*records: Record) -> Record:
    return lambda p: [r(p) for r in records]


def status_of(p: PatientBuilder) -> MenopausalStatus:
    facts = build_facts(p.patient(), p.resources, {}, KNOWLEDGE, ANCHOR_INSTANT)
    return menopausal_status(facts, KNOWLEDGE)


def NOTHING(p: PatientBuilder) -> object:
    return None


# (age, id prefix, system, code, display): codes the builder has no key for
POSTMENOPAUSAL_CODES = [
    (50, "snomed", SNOMED, "371036001", "Postsurgical menopause"),
    (50, "snomed", SNOMED, "31351009", "Artificial menopause state"),
    (50, "icd", ICD10CM, "N95.1", "Menopausal and female climacteric states"),
    (40, "icd", ICD10CM, "E28.310", "Symptomatic premature menopause"),
    (40, "icd", ICD10CM, "E28.319", "Asymptomatic premature menopause"),
    (50, "icd", ICD10CM, "E89.41", "Symptomatic postprocedural ovarian failure"),
    (50, "icd", ICD10CM, "Z90.722", "Acquired absence of ovaries, bilateral"),
]
VERIFIED_REFUTED = {"verificationStatus": {"coding": [{"code": "refuted"}]}}
CASES = [  # (age, record, status, evidence fragments, set-aside fragments)
    # postmenopausal: coded condition (SNOMED and ICD-10-CM), observation, oophorectomy, age
    pytest.param(
        50,
        lambda p: p.condition("postmenopausal"),
        "postmenopausal",
        ["Postmenopausal state on the problem list"],
        [],
        id="snomed-76498008",
    ),
    *[
        pytest.param(
            age,
            condition_coded(system, code, display),
            "postmenopausal",
            [display],
            [],
            id=f"{name}-{code}",
        )
        for age, name, system, code, display in POSTMENOPAUSAL_CODES
    ],
    pytest.param(
        45,
        lambda p: p.condition("premature-menopause"),
        "postmenopausal",
        ["Premature menopause"],
        [],
        id="snomed-373717006-premature",
    ),
    pytest.param(
        50,
        lambda p: p.condition("postmenopausal-icd"),
        "postmenopausal",
        ["Asymptomatic menopausal state"],
        [],
        id="icd-Z78.0",
    ),
    pytest.param(
        50,
        lambda p: p.condition("surgical-menopause-icd"),
        "postmenopausal",
        ["postprocedural ovarian failure"],
        [],
        id="icd-E89.40",
    ),
    pytest.param(
        50,
        condition_coded(ICD10CM, "Z78.0", "Asymptomatic menopausal state", status="resolved"),
        "postmenopausal",
        ["Asymptomatic menopausal state"],
        [],
        id="icd-Z78.0-resolved-still-counts",
    ),
    pytest.param(
        50,
        lambda p: p.menopausal_status(30, "postmenopausal"),
        "postmenopausal",
        ["menopausal status observation: After menopause (2026-09-15)"],
        [],
        id="observation-after-menopause",
    ),
    pytest.param(
        50,
        lambda p: p.menopausal_status(400, "premenopausal").menopausal_status(30, "postmenopausal"),
        "postmenopausal",
        ["After menopause"],
        [],
        id="observation-latest-after-menopause-decides",
    ),
    pytest.param(
        45,
        lambda p: p.procedure("bilateral-oophorectomy", 900),
        "postmenopausal",
        ["Excision of bilateral ovaries (2024-04-28)"],
        [],
        id="oophorectomy-snomed-76876009",
    ),
    pytest.param(
        45,
        procedure_coded(
            SNOMED, "86477000", "Total hysterectomy with removal of both tubes and ovaries"
        ),
        "postmenopausal",
        ["removal of both tubes and ovaries"],
        [],
        id="oophorectomy-snomed-86477000",
    ),
    pytest.param(
        45,
        lambda p: p.procedure("bilateral-oophorectomy-pcs", 900),
        "postmenopausal",
        ["Resection of Bilateral Ovaries, Open Approach"],
        [],
        id="oophorectomy-icd10pcs-0UT20ZZ",
    ),
    pytest.param(
        45,
        procedure_coded(
            PCS, "0UT2FZZ", "Resection of Bilateral Ovaries, Via Natural Opening Endoscopic"
        ),
        "postmenopausal",
        ["Via Natural Opening"],
        [],
        id="oophorectomy-icd10pcs-0UT2FZZ",
    ),
    pytest.param(60, NOTHING, "postmenopausal", ["age 60"], [], id="age-60"),
    pytest.param(
        62,
        lambda p: p.condition("premenopausal"),
        "postmenopausal",
        ["age 62"],
        ["Premenopausal state on the problem list (coded premenopausal)"],
        id="age-62-premenopausal-code-set-aside",
    ),
    pytest.param(
        62,
        lambda p: p.menopausal_status(20, "premenopausal"),
        "postmenopausal",
        ["age 62"],
        ["Before menopause (2026-09-25) (coded premenopausal)"],
        id="age-62-premenopausal-observation-set-aside",
    ),
    pytest.param(
        62,
        on("goserelin"),
        "postmenopausal",
        ["age 62"],
        ["goserelin (active, ordered 2026-08-16): ovarian suppression, not needed"],
        id="age-62-goserelin-set-aside",
    ),
    # ovarian suppression: an active GnRH agonist, under 60 and without postmenopausal evidence
    pytest.param(
        55,
        on("goserelin"),
        "ovarian-suppression",
        ["active GnRH agonist: goserelin (active, ordered 2026-08-16)"],
        [],
        id="goserelin-55",
    ),
    pytest.param(
        45,
        on("leuprolide"),
        "ovarian-suppression",
        ["active GnRH agonist: leuprolide"],
        [],
        id="leuprolide",
    ),
    pytest.param(
        45,
        on("triptorelin"),
        "ovarian-suppression",
        ["active GnRH agonist: triptorelin"],
        [],
        id="triptorelin",
    ),
    pytest.param(
        45,
        both(on("goserelin"), lambda p: p.condition("premenopausal")),
        "ovarian-suppression",
        ["goserelin"],
        ["Premenopausal state on the problem list (coded premenopausal; expected under ovarian"],
        id="goserelin-with-premenopausal-code-set-aside",
    ),
    pytest.param(
        45,
        on("goserelin", status="stopped"),
        "unknown",
        ["no coded menopausal status"],
        [],
        id="goserelin-stopped-not-suppression",
    ),
    # coded pre- and perimenopausal, under 60
    pytest.param(
        59,
        lambda p: p.condition("premenopausal"),
        "premenopausal",
        ["Premenopausal state on the problem list; age 59"],
        [],
        id="age-59-premenopausal-code",
    ),
    pytest.param(
        45,
        lambda p: p.condition("perimenopausal"),
        "perimenopausal",
        ["Perimenopausal on the problem list; age 45"],
        [],
        id="perimenopausal-code",
    ),
    pytest.param(
        45,
        lambda p: p.menopausal_status(30, "premenopausal"),
        "premenopausal",
        ["menopausal status observation: Before menopause (2026-09-15); age 45"],
        [],
        id="observation-before-menopause",
    ),
    pytest.param(
        45,
        lambda p: recode(
            p.menopausal_status(30, "premenopausal"),
            SNOMED,
            "303111005",
            "During menopause",
            "valueCodeableConcept",
        ),
        "perimenopausal",
        ["During menopause"],
        [],
        id="observation-during-menopause",
    ),
    pytest.param(
        50,
        lambda p: p.menopausal_status(400, "postmenopausal").menopausal_status(30, "premenopausal"),
        "premenopausal",
        ["Before menopause (2026-09-15)"],
        [],
        id="observation-latest-before-menopause-decides",
    ),
    # unknown: nothing usable
    pytest.param(
        59,
        NOTHING,
        "unknown",
        [
            "no coded menopausal status, no bilateral oophorectomy and no GnRH agonist",
            "age 59 (under 60)",
        ],
        [],
        id="age-59-nothing",
    ),
    pytest.param(
        None, lambda p: p.egfr(5, 90), "unknown", ["age unknown"], [], id="no-birth-date"
    ),  # eGFR: no renal card
    pytest.param(
        50,
        amended("postmenopausal", **VERIFIED_REFUTED),
        "unknown",
        ["age 50"],
        [],
        id="refuted-postmenopausal",
    ),
    pytest.param(
        50,
        amended(
            "postmenopausal-icd", verificationStatus={"coding": [{"code": "entered-in-error"}]}
        ),
        "unknown",
        ["age 50"],
        [],
        id="entered-in-error-Z78.0",
    ),
    pytest.param(
        50,
        amended("premenopausal", **VERIFIED_REFUTED),
        "unknown",
        ["age 50"],
        [],
        id="refuted-premenopausal",
    ),
    pytest.param(
        50,
        amended("premenopausal", clinicalStatus={"coding": [{"code": "resolved"}]}),
        "unknown",
        ["age 50"],
        [],
        id="resolved-premenopausal",
    ),
    pytest.param(
        50,
        lambda p: (
            p.menopausal_status(30, "postmenopausal")
            .resources[-1]
            .update(status="entered-in-error")
        ),
        "unknown",
        ["age 50"],
        [],
        id="observation-entered-in-error",
    ),
    pytest.param(
        45,
        lambda p: (
            p.procedure("bilateral-oophorectomy", 900).resources[-1].update(status="not-done")
        ),
        "unknown",
        ["age 45"],
        [],
        id="oophorectomy-not-done",
    ),
    pytest.param(
        45,
        procedure_coded(SNOMED, "609293001", "Laparoscopic removal of remaining ovary"),
        "unknown",
        ["age 45"],
        [],
        id="second-side-oophorectomy-alone-not-bilateral",
    ),
]


@pytest.mark.parametrize("age, record, status, evidence, set_aside", CASES)
def test_menopausal_status_routes(post, age, record, status, evidence, set_aside):
    p = prepared(early(new_patient("meno", age=age))).t_score(100, -1.0)
    record(p)
    found = rules(post(p, order(p, every=(6, "mo"))))
    expected_card = CARD_FOR.get(status)
    assert set(found) == ({expected_card} if expected_card else set())
    result = status_of(p)
    assert result.value == status
    assert result.counts_as_postmenopausal is (status in ("postmenopausal", "ovarian-suppression"))
    assert result.before_menopause is (status in ("premenopausal", "perimenopausal"))
    line, *set_aside_lines = result.lines()
    shown = {"ovarian-suppression": "postmenopausal by ovarian suppression"}.get(status, status)
    assert line.startswith(f"- Menopausal status: **{shown}**") and all(
        text in line for text in evidence
    )
    if expected_card:
        assert (
            line in found[expected_card]["detail"] and found[expected_card]["indicator"] == "info"
        )
    assert len(set_aside_lines) == len(set_aside)
    for text, shown_line in zip(set_aside, set_aside_lines, strict=True):
        assert shown_line.startswith("- Set aside: ") and text in shown_line


@pytest.mark.parametrize(
    "birth_date, status",
    [("1966-10-15", "postmenopausal"), ("1966-10-16", "unknown")],
    ids=["60th-birthday-today", "60th-birthday-tomorrow"],
)
def test_age_60_on_the_day(post, birth_date, status):
    p = prepared(early(BornOn("meno-born-pt", birth_date=birth_date)))
    found = rules(post(p, order(p, every=(6, "mo"))))
    assert set(found) == ({UNKNOWN_CARD} if status == "unknown" else set())
    if found:
        assert (
            "Menopausal status: **unknown** (no coded menopausal status"
            in found[UNKNOWN_CARD]["detail"]
        )
        assert "age 59 (under 60)" in found[UNKNOWN_CARD]["detail"]
    assert status_of(p).value == status


@pytest.mark.parametrize("chemotherapy", [None, "docetaxel"], ids=["alone", "with-docetaxel"])
def test_goserelin_counts_as_postmenopausal_for_adjuvant_za(post, chemotherapy):
    """A 55-year-old on goserelin is 'postmenopausal by ovarian suppression': no eligibility card,
    even on chemotherapy."""
    p = (
        prepared(early(new_patient("meno-gnrh", age=55)))
        .t_score(100, -1.0)
        .medication("goserelin", 60, status="active")
    )
    if chemotherapy:
        p.medication(chemotherapy, 10, status="active")
    assert post(p, order(p, every=(6, "mo"))) == []
    assert status_of(p).value == "ovarian-suppression"
    assert status_of(p).lines() == [
        "- Menopausal status: **postmenopausal by ovarian suppression** (active GnRH agonist: "
        "goserelin (active, ordered 2026-08-16))."
    ]
