"""Findings (what a rule concluded) and their rendering into CDS Hooks cards with validated FHIR
suggestions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from hooks.knowledge import Knowledge

log = logging.getLogger(__name__)

SUMMARY_LIMIT = 139


@dataclass(frozen=True)
class Action:
    type: str
    description: str
    resource: dict[str, Any] | None = None
    resource_id: str | None = None


@dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...]
    is_recommended: bool = False
    # Offered only when no earlier order-changing suggestion of the same card passes the suggestion
    # gate (e.g.
    # denosumab 120 mg when renal function rules out every zoledronic acid option).
    fallback: bool = False


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


def validate_fhir_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Check a resource against the R4B model (fhir.resources' R4 line) and return it unchanged;
    raises if invalid."""
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    return resource


class CardRenderer:
    """Turns findings into CDS Hooks card JSON; built once per app with the knowledge and optional
    icon URL."""

    def __init__(
        self,
        knowledge: Knowledge,
        icon_url: str | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.knowledge = knowledge
        self.icon_url = icon_url
        self.new_id = new_id

    def render(self, finding: Finding) -> dict[str, Any]:
        knowledge = self.knowledge
        meta = knowledge.rule_meta(finding.rule_id)
        sources = [knowledge.sources[key] for key in finding.sources]
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
        links = [{"label": s.label, "url": s.url, "type": "absolute"} for s in sources if s.url]
        if links:
            card["links"] = links
        return card

    def _detail(self, finding: Finding, sources: list) -> str:
        cited = "; ".join(s.label for s in sources)
        footer = f"\n\n**Source:** {cited}." if cited else ""
        evidence = self.knowledge.rule_meta(finding.rule_id).get("evidence") or []
        if evidence:
            footer += "\n\n**Evidence:** " + " ".join(line.rstrip(".") + "." for line in evidence)
        return (
            f"{finding.detail}{footer}\n\n*Rule `{finding.rule_id}`, knowledge version"
            f" {self.knowledge.version}.*"
        )

    def _suggestion(self, suggestion: Suggestion, rule_id: str) -> dict[str, Any] | None:
        actions = []
        for action in suggestion.actions:
            rendered: dict[str, Any] = {"type": action.type, "description": action.description}
            if action.resource is not None:
                try:
                    rendered["resource"] = validate_fhir_resource(action.resource)
                except (
                    Exception
                ) as error:  # an invalid resource must never reach the EHR; the card still stands
                    if (
                        action.type == "update"
                    ):  # built from the client's own draft, which was not valid FHIR
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
        rendered_suggestion: dict[str, Any] = {
            "label": suggestion.label,
            "uuid": self.new_id(),
            "actions": actions,
        }
        if suggestion.is_recommended:
            rendered_suggestion["isRecommended"] = True
        return rendered_suggestion


def _fit_summary(summary: str) -> str:
    if len(summary) <= SUMMARY_LIMIT:
        return summary
    log.warning("card summary longer than %d characters was shortened", SUMMARY_LIMIT)
    return summary[: SUMMARY_LIMIT - 1].rstrip() + "…"
