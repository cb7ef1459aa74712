"""Menopausal status from the record (coded status, oophorectomy, age, ovarian suppression), with
its evidence; never a guess."""

from __future__ import annotations

from dataclasses import dataclass

from hooks.facts.model import PatientFacts
from hooks.knowledge import Knowledge

POSTMENOPAUSAL = "postmenopausal"
OVARIAN_SUPPRESSION = "ovarian-suppression"
PREMENOPAUSAL = "premenopausal"
PERIMENOPAUSAL = "perimenopausal"
UNKNOWN = "unknown"
NOT_APPLICABLE = "not-applicable"  # a man: no menopausal status, no menopause-based card


@dataclass(frozen=True)
class MenopausalStatus:
    value: str
    evidence: tuple[str, ...]
    conflicts: tuple[str, ...] = ()

    @property
    def counts_as_postmenopausal(self) -> bool:
        """Natural or induced menopause: ovarian suppression counts for adjuvant bisphosphonates
        (ASCO-CCO)."""
        return self.value in (POSTMENOPAUSAL, OVARIAN_SUPPRESSION)

    @property
    def before_menopause(self) -> bool:
        return self.value in (PREMENOPAUSAL, PERIMENOPAUSAL)

    def lines(self) -> list[str]:
        """Markdown lines for a card: the status, what it rests on, and what was set aside."""
        shown = {
            OVARIAN_SUPPRESSION: "postmenopausal by ovarian suppression",
            NOT_APPLICABLE: "not applicable",
        }.get(self.value, self.value)
        lines = [
            f"- Menopausal status: **{shown}**"
            + (f" ({'; '.join(self.evidence)})" if self.evidence else "")
            + "."
        ]
        lines += [f"- Set aside: {conflict}." for conflict in self.conflicts]
        return lines


def menopausal_status(facts: PatientFacts, knowledge: Knowledge) -> MenopausalStatus:
    """Women: postmenopausal (coded, bilateral oophorectomy, age >= 60) before ovarian suppression
    (active GnRH agonist) before coded pre- or perimenopausal status under 60; otherwise unknown.

    A man has no menopausal status (not-applicable). With no recorded sex only a menopause code on
    record gives a status: age and a GnRH agonist (also a prostate cancer drug) say nothing about
    menopause without a recorded sex.
    """
    spec = knowledge.raw["menopause"]
    if facts.sex == "male":
        return MenopausalStatus(
            NOT_APPLICABLE, (f"male ({facts.sex_basis})" if facts.sex_basis else "male",)
        )
    woman = facts.sex == "female"
    age = facts.age_on(facts.now.date()) if woman else None
    latest_observation = facts.menopause_observations[0] if facts.menopause_observations else None

    post: list[str] = [
        f"{c.label} on the problem list"
        for c in facts.conditions_in("postmenopausal", active_only=False)
    ]
    if latest_observation and latest_observation.value == POSTMENOPAUSAL:
        post.append(latest_observation.dated())
    post += [f"{p.dated()}" for p in facts.oophorectomies]
    if age is not None and age >= spec["age_postmenopausal_years"]:
        post.append(f"age {age}")

    suppression = (
        [f"{m.dated()}" for m in facts.active_medications(spec["ovarian_suppression_class"])]
        if woman
        else []
    )

    before: list[tuple[str, str]] = [
        (status, f"{c.label} on the problem list")
        for status in (PREMENOPAUSAL, PERIMENOPAUSAL)
        for c in facts.conditions_in(status, active_only=True)
    ]
    if latest_observation and latest_observation.value in (PREMENOPAUSAL, PERIMENOPAUSAL):
        before.insert(0, (latest_observation.value, latest_observation.dated()))

    if post:
        conflicts = [f"{text} (coded {status})" for status, text in before]
        conflicts += [
            f"{text}: ovarian suppression, not needed to call her postmenopausal"
            for text in suppression
        ]
        return MenopausalStatus(POSTMENOPAUSAL, tuple(post), tuple(conflicts))
    if suppression:
        return MenopausalStatus(
            OVARIAN_SUPPRESSION,
            tuple(f"active GnRH agonist: {text}" for text in suppression),
            tuple(
                f"{text} (coded {status}; expected under ovarian suppression)"
                for status, text in before
            ),
        )
    if before:
        status = before[0][0]
        evidence = [text for _, text in before] + (
            [f"age {age}"] if age is not None else ["age unknown"] if woman else []
        )
        return MenopausalStatus(status, tuple(evidence))
    if not woman:
        return MenopausalStatus(
            UNKNOWN,
            (
                (
                    "no recorded sex (Patient.gender is not female or male and there is no US Core "
                    "birth sex), and no menopause code on record"
                ),
            ),
        )
    reasons = [
        "no coded menopausal status, no bilateral oophorectomy and no GnRH agonist on record"
    ]
    reasons.append(
        f"age {age} (under {spec['age_postmenopausal_years']})"
        if age is not None
        else "age unknown"
    )
    return MenopausalStatus(UNKNOWN, tuple(reasons))
