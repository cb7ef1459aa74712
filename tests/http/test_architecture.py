"""The house rules the code is held to: hooks never imports service or Flask, no import cycles
(function-local imports included), no module of service/ or hooks/ longer than 400 lines, and the
rule registry, the knowledge file's rules, the README's rule tables and the scenario catalogue agree
(every rule has a scenario in which it fires and one that keeps it quiet on purpose)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fixtures.scenarios import all_scenarios
from hooks.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "hooks", "fixtures")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every project module this module imports, at the top or inside functions (relative imports
    resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, name, known) for name, path in known.items()}


def test_hooks_never_imports_service_or_flask():
    offenders = []
    for path in (ROOT / "hooks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("service", "flask", "werkzeug", "gunicorn")
            ]
    assert offenders == []


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(
                    " -> ".join(stack[stack.index(target) :] + [target])
                    if target in stack
                    else target
                )
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    # a package's __init__ importing its own submodule is how packages work, not a cycle between
    # modules
    real = [
        c
        for c in cycles
        if not all(part.startswith(c.split(" -> ")[0]) for part in c.split(" -> "))
    ]
    assert real == []


def test_no_module_of_service_or_hooks_is_longer_than_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for package in ("service", "hooks")
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def readme_rule_ids() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([a-z0-9-]+)`", text, flags=re.MULTILINE))


def test_registry_knowledge_readme_and_scenarios_agree():
    from hooks.rules.registry import ORDER_RULES, REVIEW_RULES

    knowledge = load_knowledge()
    registered = {rule.rule_id for rule in ORDER_RULES + REVIEW_RULES}
    documented = {rule for rule in knowledge.raw["rules"] if rule != "rule-error"}
    assert registered == documented, (
        sorted(registered - documented),
        sorted(documented - registered),
    )
    assert registered <= readme_rule_ids(), sorted(registered - readme_rule_ids())
    fired = {rule for s in all_scenarios() for rule, _ in s.expected}
    assert registered <= fired, (
        f"rules without a scenario in which they fire: {sorted(registered - fired)}"
    )


def test_every_rule_has_a_scenario_that_keeps_it_quiet():
    """Both sides of every rule: a scenario built on the quiet side of its threshold (or meeting its
    exemption) that names the rule in `quiet`, and gets no card from it."""
    from hooks.rules.registry import ORDER_RULES, REVIEW_RULES

    registered = {rule.rule_id for rule in ORDER_RULES + REVIEW_RULES}
    scenarios = all_scenarios()
    quiet = {rule for s in scenarios for rule in s.quiet}
    assert registered <= quiet, f"rules without a quiet scenario: {sorted(registered - quiet)}"
    assert quiet <= registered, sorted(quiet - registered)
    contradictions = [
        (s.name, rule) for s in scenarios for rule, _ in s.expected if rule in s.quiet
    ]
    assert contradictions == []
