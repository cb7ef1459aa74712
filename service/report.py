"""`bonecds feedback-report`: how clinicians answer each rule's cards — override and acceptance
rates per rule and the override reasons they gave, as a plain-text table, as JSON, or as an SVG bar
chart (drawn here, no plotting library).

Counts follow `outcomes_by_rule`: a card counts once per outcome however often its feedback was
sent; only feedback for cards the service issued (same service) counts; rates are among the cards
with feedback. `--since` keeps cards issued and feedback received at or after that UTC date or time
(both are stored as ISO text by the server clock).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TextIO
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from service.config import Settings
    from service.store.base import FeedbackStore

NO_REASON = "(no reason given)"


def parse_since(text: str) -> str:
    """An ISO date or date-time as the text stored timestamps are compared with (UTC; a naive time
    counts as UTC)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date or date-time: {text!r} (e.g. 2026-10-01)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def rule_titles() -> Callable[[str], str]:
    from hooks.knowledge import load_knowledge

    knowledge = load_knowledge()

    def title(rule_id: str) -> str:
        try:
            return str(knowledge.rule_meta(rule_id).get("title", ""))
        except KeyError:
            return ""

    return title


def reason_displays() -> Callable[[str, str], str]:
    """(system URL, code) -> the display the knowledge file gives that override reason ("" for a
    reason it does not list): clients may send only the code and system of the reason they chose."""
    from hooks.knowledge import load_knowledge

    knowledge = load_knowledge()
    known: dict[tuple[str, str], str] = {}
    for key in knowledge.raw.get("override_reasons", {}):
        reason = knowledge.override_reason(key)
        known[(reason["system"], reason["code"])] = reason["display"]
    return lambda system, code: known.get((system, code), "")


def build_report(
    store: FeedbackStore,
    since: str = "",
    title: Callable[[str], str] | None = None,
    reason_display: Callable[[str, str], str] | None = None,
) -> dict[str, Any]:
    """Report rows per rule, most overridden first (then most cards issued), each with its override
    reasons (display as the client sent it, else the knowledge file's)."""
    title = title or rule_titles()
    reason_display = reason_display or reason_displays()
    issued = store.issued_by_rule(since)
    outcomes: dict[str, dict[str, set]] = {}
    reasons: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    unknown = 0
    for row in store.feedback_rows():
        if since and str(row["received_at"]) < since:
            continue
        rule_id = row["rule_id"]
        if rule_id is None:
            unknown += 1
            continue
        card = (row["service_id"], row["card_uuid"])
        outcomes.setdefault(rule_id, {}).setdefault(row["outcome"], set()).add(card)
        if row["outcome"] == "overridden":
            system, code = row["override_system"] or "", row["override_code"] or ""
            entry = reasons.setdefault(rule_id, {}).setdefault(
                (system, code), {"system": system, "code": code, "display": "", "cards": set()}
            )
            entry["display"] = (
                entry["display"]
                or row["override_display"]
                or (reason_display(system, code) if system or code else NO_REASON)
            )
            entry["cards"].add(card)
    rows: list[dict[str, Any]] = []
    for rule_id in sorted(set(issued) | set(outcomes)):
        accepted = len(outcomes.get(rule_id, {}).get("accepted", ()))
        overridden = len(outcomes.get(rule_id, {}).get("overridden", ()))
        answered = accepted + overridden
        rule_reasons = [
            {
                "system": r["system"],
                "code": r["code"],
                "display": r["display"],
                "count": len(r["cards"]),
                "share": len(r["cards"]) / overridden if overridden else None,
            }
            for r in reasons.get(rule_id, {}).values()
        ]
        rule_reasons.sort(key=lambda r: (-r["count"], r["system"], r["code"]))
        rows.append(
            {
                "rule_id": rule_id,
                "title": title(rule_id),
                "issued": issued.get(rule_id, 0),
                "with_feedback": answered,
                "accepted": accepted,
                "overridden": overridden,
                "override_rate": overridden / answered if answered else None,
                "acceptance_rate": accepted / answered if answered else None,
                "reasons": rule_reasons,
            }
        )
    rows.sort(
        key=lambda r: (
            r["override_rate"] is None,
            -(r["override_rate"] or 0.0),
            -r["issued"],
            -r["with_feedback"],
            r["rule_id"],
        )
    )
    return {"since": since or None, "rules": rows, "unknown_card_feedback": unknown}


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in [header, *rows]
    ]


def render_text(report: dict[str, Any]) -> str:
    rules = report["rules"]
    since = f" since {report['since']}" if report["since"] else ""
    lines = [f"Feedback per rule{since} (rates among cards with feedback)", ""]
    lines += _table(
        ["rule id", "title", "issued", "feedback", "accepted", "overridden", "override", "accept"],
        [
            [
                r["rule_id"],
                r["title"],
                str(r["issued"]),
                str(r["with_feedback"]),
                str(r["accepted"]),
                str(r["overridden"]),
                percent(r["override_rate"]),
                percent(r["acceptance_rate"]),
            ]
            for r in rules
        ],
        right={2, 3, 4, 5, 6, 7},
    )
    reason_rows = [
        [
            r["rule_id"],
            f"{x['system']}|{x['code']}" if x["system"] or x["code"] else "-",
            x["display"],
            str(x["count"]),
            percent(x["share"]),
        ]
        for r in rules
        for x in r["reasons"]
    ]
    if reason_rows:
        lines += ["", "Override reasons", ""]
        lines += _table(
            ["rule id", "reason (system|code)", "display", "overrides", "of rule's overrides"],
            reason_rows,
            right={3, 4},
        )
    if report["unknown_card_feedback"]:
        lines += [
            "",
            (
                f"{report['unknown_card_feedback']} feedback item(s) for cards this service did not"
                " issue are left out."
            ),
        ]
    return "\n".join(lines)


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


# Chart geometry (px). Labels use a monospace font so their width can be estimated without a font
# engine.
AXIS_WIDTH, ROW_HEIGHT, BAR_HEIGHT, CHAR_WIDTH, MARGIN, TOP = 400.0, 26, 16, 7.3, 16, 64
TICKS = (0, 25, 50, 75, 100)


def chart_label(row: dict[str, Any]) -> str:
    return (
        f"{row['rule_id']} ({row['overridden']}/{row['with_feedback']} overridden, {row['issued']}"
        " issued)"
    )


def render_svg(report: dict[str, Any]) -> str:
    """Horizontal bars, one per rule: the override rate (red) from 0, the acceptance rate (green)
    after it."""
    rows = report["rules"]
    labels = [chart_label(r) for r in rows]
    left = MARGIN + round(max((len(s) for s in labels), default=10) * CHAR_WIDTH) + 10
    bottom = TOP + ROW_HEIGHT * len(rows)
    width, height = left + AXIS_WIDTH + 70, bottom + 56
    title = "Override rate per rule" + (f" since {report['since']}" if report["since"] else "")
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height}" '
            f'viewBox="0 0 {width:g} {height}" font-family="sans-serif" font-size="12">'
        ),
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        (
            f'<text class="title" x="{MARGIN}" y="24" font-size="16"'
            f' font-weight="bold">{escape(title)}</text>'
        ),
        (
            f'<text class="subtitle" x="{MARGIN}" y="42" fill="#555">share of cards with feedback:'
            " overridden (red), accepted (green)</text>"
        ),
    ]
    for tick in TICKS:
        x = left + AXIS_WIDTH * tick / 100
        out.append(
            f'<line class="tick" data-percent="{tick}" x1="{x:g}" y1="{TOP - 6}" x2="{x:g}"'
            f' y2="{bottom}" stroke="#ccc"/>'
        )
        out.append(
            f'<text class="tick-label" x="{x:g}" y="{bottom + 16}" text-anchor="middle">{tick}'
            " %</text>"
        )
    for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
        y = TOP + ROW_HEIGHT * index + (ROW_HEIGHT - BAR_HEIGHT) / 2
        text_y = y + BAR_HEIGHT / 2 + 4
        out.append(f'<g class="bar" data-rule={quoteattr(row["rule_id"])}>')
        out.append(
            f'<text class="label" x="{left - 8}" y="{text_y:g}" text-anchor="end"'
            f' font-family="monospace">{escape(label)}</text>'
        )
        if row["override_rate"] is None:
            out.append(
                f'<text class="value" x="{left + 4}" y="{text_y:g}" fill="#777">no feedback</text>'
            )
        else:
            override_w = round(AXIS_WIDTH * row["override_rate"], 2)
            accept_w = round(AXIS_WIDTH * row["acceptance_rate"], 2)
            out.append(
                f'<rect class="override" x="{left}" y="{y:g}" width="{override_w:g}"'
                f' height="{BAR_HEIGHT}" fill="#c0392b"><title>overridden'
                f" {percent(row['override_rate'])}</title></rect>"
            )
            out.append(
                f'<rect class="acceptance" x="{left + override_w:g}" y="{y:g}" width="{accept_w:g}"'
                f' height="{BAR_HEIGHT}" fill="#27ae60"><title>accepted'
                f" {percent(row['acceptance_rate'])}</title></rect>"
            )
            out.append(
                f'<text class="value" x="{left + AXIS_WIDTH + 6:g}" y="{text_y:g}">'
                f"{percent(row['override_rate'])}</text>"
            )
        out.append("</g>")
    out.append(
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{left + AXIS_WIDTH:g}" y2="{bottom}"'
        ' stroke="#333"/>'
    )
    out.append(
        f'<text class="axis-title" x="{left + AXIS_WIDTH / 2:g}" y="{bottom + 36}"'
        ' text-anchor="middle">override rate (%)</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def describe_store(settings: Settings) -> str:
    if settings.database_backend == "postgresql":
        from service.store.postgres import redacted_url

        return f"PostgreSQL {redacted_url(settings.database_url)}"
    return f"SQLite {settings.sqlite_path}"


def run(
    settings: Settings,
    *,
    as_json: bool = False,
    chart: str | None = None,
    since: str = "",
    out: TextIO,
    err: TextIO,
) -> int:
    """The command: progress on `err`, the report on `out`, the chart to a file.

    0 on success (an empty store too).
    """
    from service.store import store_for

    where = describe_store(settings)
    print(f"feedback-report: reading the feedback store ({where})...", file=err, flush=True)
    try:
        store = store_for(settings)
        report = build_report(store, since)
    except (ConnectionError, ValueError, OSError) as error:
        print(f"feedback-report: {error}", file=err)
        return 1
    rules = report["rules"]
    print(
        f"feedback-report: {len(rules)} rule(s), {sum(r['issued'] for r in rules)} card(s) issued, "
        f"{sum(r['with_feedback'] for r in rules)} with feedback",
        file=err,
        flush=True,
    )
    if not rules:
        since_text = f" since {since}" if since else ""
        message = (
            f"No cards issued and no feedback recorded{since_text} in {where}: nothing to report."
        )
        if as_json:
            print(render_json(report), file=out)
            print(message, file=err)
        else:
            print(message, file=out)
        if chart:
            print("feedback-report: no chart written (no data)", file=err)
        return 0
    print(render_json(report) if as_json else render_text(report), file=out)
    if chart:
        with open(chart, "w", encoding="utf-8") as handle:
            handle.write(render_svg(report))
        print(f"feedback-report: chart written to {chart}", file=err)
    return 0
