"""Findings (what a rule concluded) and their rendering into CDS Hooks cards with validated FHIR
suggestions."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hooks.fhir_validation import SuggestionValidator
from hooks.knowledge import Knowledge, Source
from hooks.quick_frozen import quick_frozen

log = logging.getLogger(__name__)

SUMMARY_LIMIT = 139
LABEL_LIMIT = 80  # a suggestion's button text; EHRs such as the CDS Hooks Sandbox show it whole
# The card's `extension` key for what developers and feedback analysis need (rule id, knowledge
# version): the clinician's text does not carry it.
EXTENSION_KEY = "bonecds"
# traceability markers of the knowledge's evidence lines ('(seed 001)', '(L19)', '(G5; L6)'): for
# the people who maintain the knowledge, not for the clinician reading the source line
TRACE_MARKER = re.compile(r" \((?:seed \d+|[LG]\d+)(?:[,;]? (?:seed \d+|[LG]\d+))*\)")


@quick_frozen
@dataclass(frozen=True)
class Action:
    type: str
    description: str
    resource: dict[str, Any] | None = None
    resource_id: str | None = None


@quick_frozen
@dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...]
    is_recommended: bool = False
    # Offered only when no earlier order-changing suggestion of the same card passes the suggestion
    # gate (e.g.
    # denosumab 120 mg when renal function rules out every zoledronic acid option).
    fallback: bool = False


@quick_frozen
@dataclass(frozen=True)
class Finding:
    """What one rule concluded about one order; rendering adds ids, source, links and override
    reasons."""

    rule_id: str
    indicator: str
    summary: str
    detail: str
    sources: tuple[str, ...]
    suggestions: tuple[Suggestion, ...] = ()
    order_reference: str | None = None
    # fact groups whose retrieval failure this card already explains (the completeness check skips
    # them)
    reports_unavailable: tuple[str, ...] = ()
    alternatives: bool = False


# A UUID's version and variant bits (RFC 9562): cleared, then set for version 7.
UUID_VERSION_CLEARED = ~(0xC000 << 48 | 0xF000 << 64)
UUID7_SET = 0x8000 << 48 | 0x7000 << 64


def time_ordered_uuid() -> str:
    """A version 7 UUID (RFC 9562) as text: the Unix time in milliseconds, then 74 random bits.

    Each card and suggestion gets one. The issued-card ledger is keyed by the card's: ids that
    follow the clock go to the end of the ledger's index, where random (version 4) ones each land
    on another page of a growing index (the writer's work per card was 2-3 times as much at 50,000
    to 300,000 cards).
    """
    milliseconds = time.time_ns() // 1_000_000
    value = milliseconds << 80 | int.from_bytes(os.urandom(10), "big")
    text = f"{value & UUID_VERSION_CLEARED | UUID7_SET:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class CardRenderer:
    """Turns findings into CDS Hooks card JSON; built once per app with the knowledge and optional
    icon URL."""

    def __init__(
        self,
        knowledge: Knowledge,
        icon_url: str | None = None,
        new_id: Callable[[], str] | None = None,
        validator: SuggestionValidator | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.icon_url = icon_url
        self.new_id = new_id or time_ordered_uuid
        # every resource a suggestion carries is checked against the R4B models before it is sent
        self.validator = validator or SuggestionValidator()

    def render(self, finding: Finding) -> dict[str, Any]:
        knowledge = self.knowledge
        meta = knowledge.rule_meta(finding.rule_id)
        sources = [knowledge.sources[key] for key in dict.fromkeys(finding.sources)]
        primary = sources[0] if sources else None
        source: dict[str, Any] = {
            "label": primary.label if primary else "bonecds safety checks",
            "topic": {
                "system": knowledge.systems["rule"],
                "code": finding.rule_id,
                "display": meta["title"],
            },
        }
        if primary and primary.url:
            source["url"] = primary.url
        if self.icon_url:
            source["icon"] = self.icon_url
        card: dict[str, Any] = {
            "uuid": self.new_id(),
            "summary": _fit_summary(finding.summary),
            "indicator": finding.indicator,
            "detail": self._detail(finding, sources),
            "source": source,
        }
        suggestions = [
            rendered
            for s in finding.suggestions
            if (rendered := self._suggestion(s, finding.rule_id))
        ]
        if suggestions:
            card["suggestions"] = suggestions
            # several findings of one rule are independent ("any"); alternative fixes exclude each
            # other
            card["selectionBehavior"] = (
                "any" if len(suggestions) > 1 and not finding.alternatives else "at-most-one"
            )
        reasons = [knowledge.override_reason(key) for key in meta["override_reasons"]]
        if reasons:
            card["overrideReasons"] = reasons
        # the primary source is the card's source (label and url); links carry the others
        links = [{"label": s.label, "url": s.url, "type": "absolute"} for s in sources[1:] if s.url]
        if links:
            card["links"] = links
        card["extension"] = {
            EXTENSION_KEY: {"rule": finding.rule_id, "knowledgeVersion": knowledge.version}
        }
        return card

    def _detail(self, finding: Finding, sources: list[Source]) -> str:
        if not sources:
            return finding.detail
        evidence = self.knowledge.rule_meta(finding.rule_id).get("evidence") or []
        return f"{finding.detail}\n\n{source_line(sources[0], evidence)}"

    def _suggestion(self, suggestion: Suggestion, rule_id: str) -> dict[str, Any] | None:
        actions = []
        for action in suggestion.actions:
            rendered: dict[str, Any] = {"type": action.type, "description": action.description}
            if action.resource is not None:
                try:
                    rendered["resource"] = self.validator.validate(action.resource)
                except (
                    Exception
                ) as error:  # an invalid resource must never reach the EHR; the card still stands
                    # built from the client's own draft, which was not valid FHIR
                    if action.type == "update":
                        log.warning(
                            "rule %s: the draft order in the request is not valid FHIR (%s); update"
                            " suggestion dropped",
                            rule_id,
                            type(error).__name__,
                        )
                    else:
                        log.error(
                            "rule %s built an invalid %s suggestion resource (%s); suggestion"
                            " dropped",
                            rule_id,
                            action.resource.get("resourceType"),
                            type(error).__name__,
                        )
                    return None
            if action.resource_id is not None:
                rendered["resourceId"] = action.resource_id
            actions.append(rendered)
        if len(suggestion.label) > LABEL_LIMIT:
            log.warning("rule %s: suggestion label longer than %d characters", rule_id, LABEL_LIMIT)
        rendered_suggestion: dict[str, Any] = {
            "label": suggestion.label,
            "uuid": self.new_id(),
            "actions": actions,
        }
        if suggestion.is_recommended:
            rendered_suggestion["isRecommended"] = True
        return rendered_suggestion


def source_line(primary: Source, evidence: list[str]) -> str:
    """The card's one source line: the primary citation with the level of evidence the rule's
    knowledge evidence gives for it ('Source: AGO 2024 (guideline): ... LoE 1a, GR A, AGO ++.'), or
    its kind ('Source: Zometa PI (label).')."""
    short = primary.short or primary.label
    name = short.split(" (")[0]
    graded = [
        TRACE_MARKER.sub("", line.split(":", 1)[1]).strip().rstrip(".")
        for line in evidence
        if line.startswith(f"{name}:")
    ]
    line = f"Source: {short}" + (f": {'; '.join(graded)}" if graded else "")
    return line.rstrip(".") + "."


def _fit_summary(summary: str) -> str:
    if len(summary) <= SUMMARY_LIMIT:
        return summary
    log.warning("card summary longer than %d characters was shortened", SUMMARY_LIMIT)
    return summary[: SUMMARY_LIMIT - 1].rstrip() + "…"
