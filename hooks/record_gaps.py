"""What the service could not fully read before the rules ran, said on the cards: a draft whose
referenced Medication could not be obtained (a `record-incomplete` card naming the draft), and
searches the EHR paged whose later pages could not be read (a line on every card whose rule needs
that part of the record: "first page of the EHR's search only")."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hooks.cards import Finding
from hooks.facts.groups import group_name
from hooks.knowledge import Knowledge
from hooks.orders import find_bone_agent_orders

FIRST_PAGE_ONLY = "first page of the EHR's search only"


@dataclass(frozen=True)
class UnresolvedMedication:
    """A draft MedicationRequest whose `medicationReference` could not be turned into a Medication
    resource."""

    draft: dict[str, Any]
    reference: str | None
    reason: str

    @property
    def draft_reference(self) -> str | None:
        rid = self.draft.get("id")
        return f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else None

    @property
    def display(self) -> str | None:
        reference = self.draft.get("medicationReference")
        text = reference.get("display") if isinstance(reference, dict) else None
        return text if isinstance(text, str) and text.strip() else None


def unresolved_medication_findings(
    context: dict[str, Any], unresolved: Iterable[UnresolvedMedication], knowledge: Knowledge
) -> list[Finding]:
    """One `record-incomplete` warning per draft (in scope: order-select only the selected ones)
    whose Medication could not be obtained: the service cannot tell whether it orders a
    bone-modifying agent, so it must not stay silent.
    """
    unresolved = list(unresolved)
    if not unresolved:
        return []  # the common case: no draft to read again
    selections = context.get("selections")
    selected = (
        {s for s in selections if isinstance(s, str)} if isinstance(selections, list) else None
    )
    recognised = {
        id(o.resource): o for o in find_bone_agent_orders(context.get("draftOrders"), knowledge)
    }
    findings = []
    for gap in unresolved:
        if selected is not None and gap.draft_reference not in selected:
            continue
        named = gap.draft_reference or "without an id"
        pointer = f"`{gap.reference}`" if gap.reference else "a Medication"
        shown = f' (shown as "{gap.display}")' if gap.display else ""
        lines = [
            (
                f"**The medication of draft order {named} could not be read.** The order names its"
                f" drug by a reference to {pointer}{shown}, and that Medication could not be"
                f" obtained: {gap.reason}."
            ),
            "",
        ]
        order = recognised.get(id(gap.draft))
        if order is not None:
            summary = (
                f"Medication of the {order.ingredient_display} draft could not be read: checked by"
                " its name only"
            )
            lines.append(
                f"The service recognised it as {order.ingredient_display} from the reference's text"
                " only. The product, strength and dose form come from the Medication, so the"
                " checks that depend on them (dose, renal dose table, schedule) may be incomplete"
                " or wrong."
            )
        else:
            summary = "Draft order's medication could not be read: bone-agent checks not done"
            lines.append(
                "The service cannot tell whether this order is for a bone-modifying agent"
                " (zoledronic acid, pamidronate, ibandronate, alendronate, risedronate, clodronate,"
                " etidronate or denosumab). If it is, **none of the bone-agent safety checks were"
                " done for it** (renal function, calcium, dental check, osteonecrosis of the jaw,"
                " dose and schedule, allergies, pregnancy), and it was not counted when the other"
                " drafts were checked for duplicates."
            )
        lines += [
            "",
            (
                "Check the order by hand before signing. The EHR can send the Medication with the"
                " order (contained, or in draftOrders) or give a FHIR server to read it from."
            ),
        ]
        meta = knowledge.rule_meta("record-incomplete")
        findings.append(
            Finding(
                "record-incomplete",
                "warning",
                summary,
                "\n".join(lines),
                tuple(meta["sources"]),
                order_reference=gap.draft_reference,
            )
        )
    return findings


def with_partial_notes(
    findings: Iterable[Finding], partial: dict[str, str], knowledge: Knowledge
) -> list[Finding]:
    """Each card whose rule needs a part of the record of which only the EHR's first page came says
    so in its detail:

    the data was used, and later pages may hold more (it is not "could not be retrieved").
    """
    findings = list(findings)
    if not partial:
        return findings
    rules = knowledge.raw.get("rules", {})
    noted = []
    for finding in findings:
        needs = rules.get(finding.rule_id, {}).get("needs") or []
        lines = [
            f"- {group_name(group)}: {FIRST_PAGE_ONLY} ({partial[group]}); later pages were not"
            " seen."
            for group in sorted(partial)
            if group in needs
        ]
        if lines:
            note = "\n".join(["", "", "**Read from the EHR's first page only:**", *lines])
            finding = dataclasses.replace(finding, detail=finding.detail + note)
        noted.append(finding)
    return noted
