"""Regimen rules and the completeness card through the whole HTTP path, on both sides of every
threshold.

Every test starts from a patient who gets no card at all (a prepared patient with bone metastases
and zoledronic acid 4 mg every 12 weeks, or in early breast cancer with the 6-monthly adjuvant
schedule) and changes one thing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from fixtures.builder import FIXTURE_ANCHOR_DATE, PatientBuilder, draft_orders
from fixtures.prefetch import hook_request, transaction_resources
from tests.support.order_sign_http import (
    SERVICE_ID,
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

TOMORROW = (FIXTURE_ANCHOR_DATE + timedelta(days=1)).isoformat()
FIVE_YEARS_DAYS = (
    FIXTURE_ANCHOR_DATE - FIXTURE_ANCHOR_DATE.replace(year=FIXTURE_ANCHOR_DATE.year - 5)
).days
ZA_4MG_RXNORM = "1865665"
DENOSUMAB_120_RXNORM = "1046398"

SETTINGS = {
    "early": early,
    "metastatic": metastatic,
    # current hypercalcemia of malignancy: diagnosed 3 days ago, corrected calcium 12.6 mg/dL
    # yesterday
    "hypercalcemia": (
        lambda p: (
            metastatic(p).condition("hypercalcemia", onset_days_ago=3).corrected_calcium(1, 12.6)
        )
    ),
}

# product -> (builder key for past doses, draft order builder taking an interval)
PRODUCTS = {
    "za4": ("zoledronic-acid-4mg", lambda p, every, **kw: order(p, every=every, **kw)),
    "za5": (
        "zoledronic-acid-5mg",
        lambda p, every, **kw: order(p, "zoledronic-acid-5mg", dose_mg=5, every=every, **kw),
    ),
    "pamidronate": (
        "pamidronate-90mg",
        lambda p, every, **kw: order(p, "pamidronate-90mg", dose_mg=90, every=every, **kw),
    ),
    "denosumab120": (
        "denosumab-120mg",
        lambda p, every, **kw: denosumab_order(p, 120, every=every, **kw),
    ),
    "denosumab60": (
        "denosumab-60mg",
        lambda p, every, **kw: denosumab_order(p, 60, every=every, **kw),
    ),
    # the Boniva 3 mg product by its code: without one, an IV ibandronate order repeating more
    # often than every 3 months is the oncology product (catalog rev. 2)
    "ibandronate3": (
        "ibandronate",
        lambda p, every, **kw: order(p, "ibandronate-3mg-syringe", dose_mg=3, every=every, **kw),
    ),
    "ibandronate6": (
        "ibandronate",
        lambda p, every, **kw: order(p, "ibandronate", dose_mg=6, every=every, **kw),
    ),
}


def patient(setting: str = "metastatic") -> PatientBuilder:
    return prepared(SETTINGS[setting](new_patient("regimen")))


def draft(p: PatientBuilder, product: str, every: tuple[float, str], **extra) -> dict:
    return PRODUCTS[product][1](p, every, **extra)


def only(
    found: dict[str, dict], rule: str | None, *, also: frozenset[str] = frozenset()
) -> dict | None:
    """Assert that exactly `rule` (or nothing) fired, besides `also`; return its card."""
    assert set(found) == ({rule} if rule else set()) | also, sorted(found)
    return found.get(rule) if rule else None


def the_update(card: dict, draft_order: dict, index: int = 0) -> dict:
    """The whole draft resource carried by an update suggestion (rendering validated it against the
    R4 model)."""
    updates = actions(card, "update")
    resource = updates[index]["resource"]
    assert resource["resourceType"] == "MedicationRequest" and resource["id"] == draft_order["id"]
    assert resource["subject"] == draft_order["subject"]
    return resource


def repeat(resource: dict) -> dict:
    return resource["dosageInstruction"][0]["timing"]["repeat"]


def dose(resource: dict) -> float:
    return resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]


def deletes(card: dict) -> list[str]:
    return [a["resourceId"] for a in actions(card, "delete")]


# interval-too-short: the order's own interval, and the days since the last dose.
# (setting, product, usual interval, minimum interval, first day count that is long enough)
MINIMUMS = [
    ("early", "za4", (6, "mo"), (6, "mo"), 169),
    ("metastatic", "za4", (12, "wk"), (3, "wk"), 21),
    ("hypercalcemia", "pamidronate", (7, "d"), (7, "d"), 7),
    ("early", "za5", (1, "a"), (12, "mo"), 352),
    ("metastatic", "pamidronate", (4, "wk"), (3, "wk"), 21),
    ("metastatic", "denosumab120", (4, "wk"), (4, "wk"), 28),
    ("early", "denosumab60", (6, "mo"), (6, "mo"), 169),
    ("early", "ibandronate3", (3, "mo"), (3, "mo"), 78),
    ("metastatic", "ibandronate6", (4, "wk"), (3, "wk"), 21),
]
MINIMUM_IDS = [
    "za4-early",
    "za4-metastatic",
    "pamidronate-hypercalcemia",
    "za5",
    "pamidronate",
    "denosumab120",
    "denosumab60",
    "ibandronate-3mg-iv",
    "ibandronate-6mg-iv-metastatic",
]
# Where the minimum is not itself a guideline interval, the suggestion is the nearest one that is.
SUGGESTED_EVERY = {("metastatic", "za4"): (4, "wk")}
FIRES = pytest.mark.parametrize("fires", [True, False], ids=["one-day-short", "long-enough"])
UNIT_WORDS = {"d": "days", "wk": "weeks", "mo": "months"}


def assert_interval_card(found: dict, fires: bool, minimum: tuple[int, str]) -> dict | None:
    card = only(found, "interval-too-short" if fires else None)
    if card:
        grace = " (2 weeks early is accepted)" if minimum[1] == "mo" else ""
        assert card["indicator"] == "warning"
        assert (
            f"more frequent than the minimum of every {minimum[0]} {UNIT_WORDS[minimum[1]]}{grace} "
            in card["detail"]
        )
    return card


@FIRES
@pytest.mark.parametrize("via", ["last-dose", "order"])
@pytest.mark.parametrize("setting, product, usual, minimum, long_enough", MINIMUMS, ids=MINIMUM_IDS)
def test_interval_minimum(post, setting, product, usual, minimum, long_enough, via, fires):
    """The last dose of the same drug `days` ago (order at its usual interval), or the order
    repeating every `days`."""
    p = patient(setting)
    days = long_enough - 1 if fires else long_enough
    if via == "last-dose":
        p.medication(PRODUCTS[product][0], days)
    draft_order = draft(p, product, usual if via == "last-dose" else (days, "d"))
    if via == "order" and product == "denosumab60":
        # rev. 2: the 60 mg strength's own interval is denosumab-strength-schedule's card
        only(rules(post(p, draft_order)), "denosumab-strength-schedule" if fires else None)
        return
    card = assert_interval_card(rules(post(p, draft_order)), fires, minimum)
    if not card:
        return
    changed = repeat(the_update(card, draft_order))
    if via == "last-dose":
        assert f"was {days} days ago" in card["detail"] and "(order completed)" in card["detail"]
        assert changed["boundsPeriod"] == {"start": TOMORROW}  # one day short: due tomorrow
        assert (changed["period"], changed["periodUnit"]) == usual  # the interval itself was fine
    else:
        assert f"repeats every {days} days" in card["detail"]
        suggested = SUGGESTED_EVERY.get((setting, product), minimum)
        assert (changed["frequency"], changed["period"], changed["periodUnit"]) == (1, *suggested)
        assert "boundsPeriod" not in changed


@pytest.mark.parametrize(
    "every, fires",
    [((24, "wk"), True), ((26, "wk"), False), ((6, "mo"), False)],
    ids=["24-weeks", "26-weeks", "6-months"],
)
def test_adjuvant_zoledronic_acid_order_in_weeks(post, every, fires):
    p = patient("early")
    draft_order = order(p, every=every)
    card = assert_interval_card(rules(post(p, draft_order)), fires, (6, "mo"))
    if card:
        changed = repeat(the_update(card, draft_order))
        assert (changed["period"], changed["periodUnit"]) == (6, "mo")


@pytest.mark.parametrize(
    "administered, requested, fires",
    [(25, 10, False), (20, 30, True)],
    ids=["administration-25d-beats-order-10d", "administration-20d-beats-order-30d"],
)
def test_interval_prefers_administrations(post, administered, requested, fires):
    p = patient()
    p.administration("zoledronic-acid-4mg", administered, dose_mg=4).medication(
        "zoledronic-acid-4mg", requested
    )
    card = assert_interval_card(rules(post(p, order(p))), fires, (3, "wk"))
    if card:
        assert (
            f"was {administered} days ago" in card["detail"]
            and "(administration recorded)" in card["detail"]
        )


# metastatic-schedule-inappropriate


@pytest.mark.parametrize(
    "setting, make, described",
    [
        ("metastatic", lambda p: draft(p, "za4", (6, "mo")), "adjuvant schedule"),
        ("metastatic", lambda p: draft(p, "za4", (26, "wk")), "adjuvant schedule"),
        (
            "metastatic",
            lambda p: draft(p, "za5", (1, "a")),
            "zoledronic acid 5 mg (osteoporosis strength)",
        ),
        (
            "metastatic",
            lambda p: draft(p, "denosumab60", (6, "mo")),
            "denosumab 60 mg (osteoporosis strength)",
        ),
        ("metastatic", lambda p: oral_order(p), "oral alendronate"),
        (
            "metastatic",
            lambda p: oral_order(p, "ibandronate", 150, (1, "mo")),
            "ibandronate 150 mg monthly",
        ),
        (
            "metastatic",
            lambda p: draft(p, "ibandronate3", (3, "mo")),
            "ibandronate 3 mg IV every 3 months",
        ),
        ("metastatic", lambda p: draft(p, "ibandronate6", (4, "wk")), None),
        ("metastatic", lambda p: draft(p, "za4", (12, "wk")), None),
        ("metastatic", lambda p: draft(p, "za4", (4, "wk")), None),
        ("metastatic", lambda p: draft(p, "za4", (3, "mo")), None),
        ("metastatic", lambda p: draft(p, "denosumab120", (4, "wk")), None),
        ("metastatic", lambda p: draft(p, "pamidronate", (4, "wk")), None),
        ("early", lambda p: draft(p, "za4", (6, "mo")), None),
        ("early", lambda p: draft(p, "denosumab60", (6, "mo")), None),
    ],
    ids=[
        "za4-6mo",
        "za4-26wk",
        "za5-yearly",
        "denosumab60",
        "alendronate",
        "ibandronate-oral-150",
        "ibandronate-3mg-iv",
        "ibandronate-6mg-iv-ok",
        "za4-12wk-ok",
        "za4-4wk-ok",
        "za4-3mo-ok",
        "denosumab120-ok",
        "pamidronate-ok",
        "early-za4-6mo-ok",
        "early-denosumab60-ok",
    ],
)
def test_metastatic_schedule(post, setting, make, described):
    p = patient(setting)
    draft_order = make(p)
    card = only(
        rules(post(p, draft_order)), "metastatic-schedule-inappropriate" if described else None
    )
    if not card:
        return
    assert card["indicator"] == "warning" and described in card["detail"]
    if "denosumab 60 mg" in described:  # the same drug at its oncology strength
        (resource,) = [a["resource"] for a in actions(card, "update")]
        assert resource["medicationCodeableConcept"]["coding"][0]["code"] == DENOSUMAB_120_RXNORM
        assert dose(resource) == 120 and (
            repeat(resource)["period"],
            repeat(resource)["periodUnit"],
        ) == (4, "wk")
        return
    assert card["selectionBehavior"] == "at-most-one"
    assert [s.get("isRecommended", False) for s in card["suggestions"]] == [True, False]
    for index, weeks in enumerate((12, 4)):
        resource = the_update(card, draft_order, index)
        assert resource["medicationCodeableConcept"]["coding"][0]["code"] == ZA_4MG_RXNORM
        assert dose(resource) == 4
        assert resource["dosageInstruction"][0]["route"]["coding"][0]["code"] == "47625008"
        assert {
            k: repeat(resource)[k] for k in ("period", "periodUnit", "duration", "durationUnit")
        } == {"period": weeks, "periodUnit": "wk", "duration": 15, "durationUnit": "min"}


def ordered(card: dict) -> list[tuple[str, float, tuple]]:
    """(RxNorm code, dose, (period, unit)) of each order a card's suggestions would create or
    update."""
    out = []
    for action in actions(card):
        resource = action.get("resource")
        if resource and resource["resourceType"] == "MedicationRequest":
            timing = resource["dosageInstruction"][0].get("timing", {}).get("repeat", {})
            out.append(
                (
                    resource["medicationCodeableConcept"]["coding"][0]["code"],
                    dose(resource),
                    (timing.get("period"), timing.get("periodUnit")),
                )
            )
    return out


ZA_12 = (ZA_4MG_RXNORM, 4, (12, "wk"))
ZA_4 = (ZA_4MG_RXNORM, 4, (4, "wk"))
DMAB_120 = ("1046398", 120, (4, "wk"))


@pytest.mark.parametrize(
    "change, offered, blocked_by",
    [
        (lambda p: p, [ZA_12, ZA_4], None),
        # 64-year-old woman: CrCl = 64.6 x weight / (72 x creatinine)
        (
            lambda p: p.creatinine(1, 2.4).weight(1, 55),
            [DMAB_120],
            "renal-contraindicated",
        ),  # CrCl 20.6
        (
            lambda p: p.creatinine(1, 1.0).weight(1, 33.2),
            [DMAB_120],
            "renal-contraindicated",
        ),  # CrCl 29.79
        (
            lambda p: p.creatinine(1, 1.0).weight(1, 33.5),
            [(ZA_4MG_RXNORM, 3, (12, "wk")), (ZA_4MG_RXNORM, 3, (4, "wk"))],
            None,
        ),  # CrCl 30.06: the lowest band, 3.0 mg
        (lambda p: p.condition("dialysis"), [DMAB_120], "renal-contraindicated"),
        (lambda p: p.allergy(text="bisphosphonates"), [DMAB_120], "hypersensitivity"),
        (lambda p: p.condition("onj"), [], "onj-history"),
        (lambda p: p.condition("pregnancy", onset_days_ago=60), [], "pregnancy-or-lactation"),
        (lambda p: p.corrected_calcium(1, 8.1), [], "calcium-low"),
    ],
    ids=[
        "prepared",
        "crcl-20.6",
        "crcl-29.8",
        "crcl-30.1",
        "dialysis",
        "bisphosphonate-allergy",
        "onj",
        "pregnant",
        "calcium-low",
    ],
)
def test_metastatic_schedule_offers_only_what_passes(post, change, offered, blocked_by):
    """A suggestion is an order: zoledronic acid is offered only when this patient may receive it,
    denosumab 120 mg when renal function (or an allergy) rules it out, nothing when nothing is safe,
    and the detail says why."""
    p = change(patient())
    card = rules(post(p, draft(p, "za4", (6, "mo"))))["metastatic-schedule-inappropriate"]
    assert ordered(card) == offered
    if blocked_by:
        assert "Not offered: *zoledronic acid 4 mg IV every 12 weeks*" in card["detail"]
    if not offered:
        assert "none is offered" in card["detail"] and "suggestions" not in card
    if offered == [DMAB_120] and blocked_by == "renal-contraindicated":
        assert (
            "would still draw a warning" in card["detail"]
            and "severe renal" in card["detail"].lower()
        )


def test_regimen_change_keeps_the_renal_dose(post):
    """CrCl 45 mL/min: a 3.3 mg 6-monthly draft becomes 3.3 mg every 12 or 4 weeks, never 4 mg
    again; a 4 mg draft is offered at 3.3 mg."""
    p = patient()
    p.creatinine(1, 1.1).weight(1, 60)  # 64-year-old woman: CrCl 48.9
    card = rules(post(p, draft(p, "za4", (6, "mo"), dose_mg=3.3)))[
        "metastatic-schedule-inappropriate"
    ]
    assert [d for _, d, _ in ordered(card)] == [3.3, 3.3]
    p = patient()
    p.creatinine(1, 1.1).weight(1, 60)
    found = rules(post(p, draft(p, "za4", (6, "mo"))))
    card = found["metastatic-schedule-inappropriate"]
    assert [d for _, d, _ in ordered(card)] == [3.3, 3.3]
    assert [s["label"] for s in card["suggestions"]] == [
        "Change to zoledronic acid 3.3 mg IV every 12 weeks",
        "Change to zoledronic acid 3.3 mg IV every 4 weeks",
    ]
    assert "Written at 3.3 mg, the label dose for CrCl 48.9 mL/min" in card["detail"]


def test_denosumab_60_for_bone_metastases_at_crcl_19_is_offered_denosumab_120(post):
    p = patient()
    p.creatinine(1, 2.6).weight(1, 55)  # CrCl about 19
    card = rules(post(p, draft(p, "denosumab60", (6, "mo"))))["metastatic-schedule-inappropriate"]
    assert ordered(card) == [DMAB_120]


# hypercalcemia of malignancy: a single zoledronic acid dose, retreatment after 7 days; denosumab
# days 8 and 15


@pytest.mark.parametrize(
    "every, last_days, fires, fix",
    [
        (None, None, False, None),
        ((1, "wk"), None, True, "single"),
        ((12, "wk"), None, True, "single"),
        (None, 6, True, "start"),
        (None, 7, False, None),
    ],
    ids=["single-dose", "weekly-standing", "12-weekly", "retreat-day-6", "retreat-day-7"],
)
def test_hypercalcemia_zoledronic_acid_is_one_dose(post, every, last_days, fires, fix):
    p = patient("hypercalcemia")
    if last_days is not None:
        p.medication("zoledronic-acid-4mg", last_days)
    draft_order = order(p, every=every)
    found = rules(post(p, draft_order))
    assert ("interval-too-short" in found) is fires, sorted(found)
    if not fires:
        return
    changed = repeat(the_update(found["interval-too-short"], draft_order))
    if fix == "single":
        assert changed.get("count") == 1 and "period" not in changed
        assert "single dose" in found["interval-too-short"]["summary"]
    else:
        assert changed["boundsPeriod"] == {"start": TOMORROW}


@pytest.mark.parametrize(
    "doses, fires",
    [
        ((7,), False),
        ((14, 7), False),
        ((6,), True),
        ((21, 14, 7), True),
        ((28,), False),
        ((35, 28, 21), False),
    ],
    ids=[
        "day8",
        "day15",
        "day7-too-soon",
        "third-extra",
        "day29",
        "after-extras-4-weeks-from-first",
    ],
)
def test_hypercalcemia_denosumab_loading_doses(post, doses, fires):
    """Xgeva in hypercalcemia of malignancy: up to two extra 120 mg doses in the first 28 days, 7
    days apart."""
    p = patient("hypercalcemia")
    for days_ago in doses:
        p.medication("denosumab-120mg", days_ago)
    found = rules(post(p, denosumab_order(p, 120)))
    assert ("interval-too-short" in found) is fires, sorted(found)


@pytest.mark.parametrize(
    "calcium, dose_mg, suggested",
    [
        (12.6, 30, 60),
        (12.6, 60, None),
        (13.5, 59, 60),
        (13.6, 60, 90),
        (13.6, 90, None),
        (11.9, 30, None),
    ],
    ids=["12.6-30mg", "12.6-60mg", "13.5-59mg", "13.6-60mg", "13.6-90mg", "11.9-not-in-a-band"],
)
def test_pamidronate_dose_by_calcium(post, calcium, dose_mg, suggested):
    p = metastatic(new_patient("pam")).condition("hypercalcemia", onset_days_ago=2)
    prepared(p, calcium=False).corrected_calcium(1, calcium)
    found = rules(post(p, order(p, "pamidronate-90mg", dose_mg=dose_mg, every=None)))
    assert ("pamidronate-hcm-dose" in found) is (suggested is not None), sorted(found)
    if suggested:
        card = found["pamidronate-hcm-dose"]
        assert card["indicator"] == "warning"
        assert [d for _, d, _ in ordered(card)] == [suggested]


# adjuvant-duration-exceeded: a 6-monthly course whose first dose was `first` days ago


def course(
    p: PatientBuilder, *spans: tuple[int, int], key: str = "zoledronic-acid-4mg"
) -> PatientBuilder:
    """Doses every 180 days from `start` down to `end` days ago, for each (start, end) span."""
    for start, end in spans:
        for days_ago in range(start, end - 1, -180):
            p.medication(key, days_ago)
    return p


@pytest.mark.parametrize(
    "setting, spans, earlier_key, fires",
    [
        ("early", [(FIVE_YEARS_DAYS, 200)], None, False),
        ("early", [(FIVE_YEARS_DAYS + 1, 200)], None, True),
        ("early", [(FIVE_YEARS_DAYS + 700, 1900), (1300, 200)], None, False),
        ("metastatic", [(FIVE_YEARS_DAYS + 1, 200)], None, False),
        ("early", [(FIVE_YEARS_DAYS + 1, 1000), (820, 200)], "alendronate", True),
        ("early", [(FIVE_YEARS_DAYS + 1, 1000), (820, 200)], "denosumab-60mg", False),
    ],
    ids=[
        "exactly-5-years",
        "5-years-and-a-day",
        "gap-restarts-course",
        "not-early-setting",
        "alendronate-then-zoledronic-acid",
        "denosumab-then-zoledronic-acid",
    ],
)
def test_adjuvant_duration(post, setting, spans, earlier_key, fires):
    p = patient(setting)
    if earlier_key:  # the first span is another drug, the second zoledronic acid
        course(p, spans[0], key=earlier_key)
        course(p, *spans[1:])
    else:
        course(p, *spans)
    draft_order = order(p, every=(6, "mo") if setting == "early" else (12, "wk"))
    card = only(rules(post(p, draft_order)), "adjuvant-duration-exceeded" if fires else None)
    if card:
        first = (FIXTURE_ANCHOR_DATE - timedelta(days=spans[0][0])).isoformat()
        assert card["indicator"] == "warning"
        assert f"began on {first}" in card["detail"] and "more than 5 years ago" in card["detail"]
        assert deletes(card) == [f"MedicationRequest/{draft_order['id']}"]


# infusion-too-fast and dose-above-maximum


@pytest.mark.parametrize(
    "setting, product, every, duration, minimum",
    [
        ("metastatic", "za4", (12, "wk"), (15, "min"), None),
        ("metastatic", "za4", (12, "wk"), (14, "min"), 15),
        ("early", "za5", (1, "a"), (15, "min"), None),
        ("early", "za5", (1, "a"), (14, "min"), 15),
        ("metastatic", "pamidronate", (4, "wk"), (120, "min"), None),
        ("metastatic", "pamidronate", (4, "wk"), (119, "min"), 120),
        ("metastatic", "pamidronate", (4, "wk"), (2, "h"), None),
        ("metastatic", "pamidronate", (4, "wk"), (1.5, "h"), 120),
        ("metastatic", "za4", (12, "wk"), None, None),
    ],
    ids=[
        "za4-15min-ok",
        "za4-14min",
        "za5-15min-ok",
        "za5-14min",
        "pamidronate-120min-ok",
        "pamidronate-119min",
        "pamidronate-2h-ok",
        "pamidronate-1.5h",
        "no-duration",
    ],
)
def test_infusion_time(post, setting, product, every, duration, minimum):
    p = patient(setting)
    draft_order = draft(p, product, every)
    if duration:
        repeat(draft_order).update(duration=duration[0], durationUnit=duration[1])
    card = only(rules(post(p, draft_order)), "infusion-too-fast" if minimum else None)
    if card:
        minutes = duration[0] * {"min": 1, "h": 60}[duration[1]]
        assert card["indicator"] == "warning"
        assert (
            f"infused over {minutes:g} minutes; the label minimum is {minimum:g} minutes"
            in card["detail"]
        )
        changed = repeat(the_update(card, draft_order))
        assert (changed["duration"], changed["durationUnit"], changed["period"]) == (
            minimum,
            "min",
            every[0],
        )


@pytest.mark.parametrize(
    "product, ordered, maximum",
    [
        ("za4", 4, None),
        ("za4", 4.1, 4),
        ("za4", 5, 4),
        ("pamidronate", 90, None),
        ("pamidronate", 91, 90),
    ],
    ids=[
        "za4-4mg-ok",
        "za4-4.1mg",
        "za4-product-at-5mg",
        "pamidronate-90mg-ok",
        "pamidronate-91mg",
    ],
)
def test_dose_maximum(post, product, ordered, maximum):
    p = patient()
    every = (12, "wk") if product == "za4" else (4, "wk")
    draft_order = draft(p, product, every)
    draft_order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = ordered
    found = rules(post(p, draft_order))
    # CrCl 79: the renal dose table asks for the full 4 mg, so only the maximum-dose card speaks.
    card = only(found, "dose-above-maximum" if maximum else None)
    if card:
        assert card["indicator"] == "warning"
        assert (
            f"single dose of {ordered:g} mg is above the label maximum of {maximum:g} mg"
            in card["detail"]
        )
        assert dose(the_update(card, draft_order)) == maximum


# oral-bp-regimen (early setting, so the metastatic schedule rule stays quiet)


@pytest.mark.parametrize(
    "key, mg, every, label_every",
    [
        ("alendronate", 70, (1, "wk"), None),
        ("alendronate", 70, (1, "d"), (1, "wk")),
        ("alendronate", 10, (1, "d"), None),
        ("risedronate-35mg", 35, (1, "wk"), None),
        ("risedronate-35mg", 35, (1, "d"), (1, "wk")),
        ("risedronate", 150, (1, "mo"), None),
        ("risedronate", 150, (1, "wk"), (1, "mo")),
        ("ibandronate", 150, (1, "mo"), None),
        ("ibandronate", 150, (4, "wk"), None),
        ("ibandronate", 150, (3, "wk"), (1, "mo")),
        ("risedronate", 150, (27, "d"), (1, "mo")),
    ],
    ids=[
        "alendronate-70-weekly-ok",
        "alendronate-70-daily",
        "alendronate-10-daily-ok",
        "risedronate-35-weekly-ok",
        "risedronate-35-daily",
        "risedronate-150-monthly-ok",
        "risedronate-150-weekly",
        "ibandronate-150-monthly-ok",
        "ibandronate-150-4-weekly-ok",
        "ibandronate-150-3-weekly",
        "risedronate-150-27-days",
    ],
)
def test_oral_regimen(post, key, mg, every, label_every):
    p = patient("early")
    draft_order = oral_order(p, key, mg, every)
    card = only(rules(post(p, draft_order)), "oral-bp-regimen" if label_every else None)
    if card:
        assert card["indicator"] == "warning"
        assert (
            f"the {mg} mg strength is taken every {'week' if label_every[1] == 'wk' else 'month'}"
            in card["detail"]
        )
        changed = repeat(the_update(card, draft_order))
        assert (changed["frequency"], changed["period"], changed["periodUnit"]) == (1, *label_every)
        # an oral bisphosphonate order tells the patient how to take it
        minutes = "60 minutes" if key == "ibandronate" else "30 minutes"
        instruction = the_update(card, draft_order)["dosageInstruction"][0]["patientInstruction"]
        assert "plain water" in instruction and f"at least {minutes}" in instruction


# duplicate-bone-agent


@pytest.mark.parametrize(
    "key, status, indicator",
    [
        ("zoledronic-acid-4mg", "active", "critical"),
        ("zoledronic-acid-5mg", "on-hold", "critical"),
        ("denosumab-120mg", "active", "warning"),
        ("zoledronic-acid-4mg", "draft", "critical"),
        ("zoledronic-acid-4mg", "stopped", None),
        ("zoledronic-acid-4mg", "completed", None),
        ("denosumab-120mg", "completed", None),
    ],
    ids=[
        "same-active",
        "same-ingredient-on-hold",
        "denosumab-active",
        "same-draft-on-record",
        "same-stopped",
        "same-completed",
        "denosumab-completed",
    ],
)
def test_duplicate_on_record(post, key, status, indicator):
    p = patient().medication(key, 60, status=status)
    draft_order = order(p)
    card = only(rules(post(p, draft_order)), "duplicate-bone-agent" if indicator else None)
    if card:
        assert card["indicator"] == indicator and f"({status}, ordered " in card["detail"]
        assert ("The same drug must not be given twice" in card["detail"]) is (
            indicator == "critical"
        )
        assert deletes(card) == [f"MedicationRequest/{draft_order['id']}"]


@pytest.mark.parametrize(
    "other, indicator",
    [("za4", "critical"), ("denosumab120", "warning")],
    ids=["two-zoledronic-acid", "zoledronic-acid-and-denosumab"],
)
def test_duplicate_drafts_in_one_request(post, other, indicator):
    p = patient()
    first, second = order(p, suffix="first"), draft(p, other, (4, "wk"), suffix="second")
    cards = post(p, first, second)
    assert [c["source"]["topic"]["code"] for c in cards] == ["duplicate-bone-agent"] * 2
    references = [f"MedicationRequest/{d['id']}" for d in (first, second)]
    for card, own in zip(cards, references, strict=True):
        assert card["indicator"] == indicator and "Also being ordered now" in card["detail"]
        assert card["selectionBehavior"] == "at-most-one"
        assert deletes(card)[0] == own and sorted(deletes(card)) == sorted(references)


# record-incomplete: a prefetch key left out (no fhirServer), failed (OperationOutcome) or null (no
# data)

OPERATION_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "exception", "diagnostics": "timeout"}],
}


def post_prefetch(app, p: PatientBuilder, draft_order: dict, overrides: dict) -> list[dict]:
    """Post with full prefetch and no fhirServer, with some keys replaced (`...` leaves a key out,
    "*" every key but the patient)."""
    service = app.extensions["bonecds"].services[SERVICE_ID]
    body = hook_request(
        service,
        p.patient_id,
        draft_orders(draft_order),
        resources=transaction_resources(p.transaction()),
    )
    prefetch = body["prefetch"]
    for key, value in overrides.items():
        for target in [k for k in list(prefetch) if k != "patient"] if key == "*" else [key]:
            prefetch.pop(target)
            if value is not ...:
                prefetch[target] = value
    response = app.test_client().post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


NOT_PREFETCHED = "(not prefetched, and the request gave no FHIR server to read it from)"
RENAL_CALCIUM_DENTAL = {"renal-data-missing", "calcium-data-missing", "dental-check-missing"}


@pytest.mark.parametrize(
    "overrides, also, present, absent",
    [
        (
            {"allergies": ...},
            set(),
            [
                f"Allergies could not be retrieved {NOT_PREFETCHED}. Not fully checked: allergy to"
                " the ordered agent."
            ],
            ["Vitamin D"],
        ),
        (
            {"vitaminD": OPERATION_OUTCOME},
            set(),
            ["Vitamin D results could not be retrieved", "Not fully checked: low 25-OH vitamin D."],
            ["Allergies"],
        ),
        (
            {"medications": ...},
            set(),
            [
                "Not fully checked: another bone-modifying agent is ordered or active; ",
                "dosing interval shorter than the minimum",
            ],
            ["administrations could not"],
        ),
        (
            {"*": ...},
            RENAL_CALCIUM_DENTAL,
            [
                "Allergies could not",
                "Problem list (conditions) could not",
                "Pregnancy status could not",
                "Vitamin D results could not",
            ],
            [
                "Creatinine results could not",
                "Calcium results could not",
                "Dental examinations could not",
            ],
        ),
        ({"vitaminD": None}, None, [], []),
        ({"renal": ...}, {"renal-data-missing"}, [], []),
    ],
    ids=[
        "allergies-absent",
        "vitamin-d-operation-outcome",
        "medications-absent",
        "only-patient-prefetched",
        "vitamin-d-null-is-no-data",
        "renal-absent-reported-by-renal-card",
    ],
)
def test_record_incomplete(frozen_order_sign_app, overrides, also, present, absent):
    p = patient()
    found = rules(post_prefetch(frozen_order_sign_app, p, order(p), overrides))
    card = only(found, "record-incomplete" if present else None, also=frozenset(also or ()))
    if card:
        assert card["indicator"] == "warning" and "suggestions" not in card
        assert all(text in card["detail"] for text in present), card["detail"]
        assert not any(text in card["detail"] for text in absent), card["detail"]
