"""The committed scenario bundles are exactly what fixtures/scenarios.py generates."""

from fixtures.build import main


def test_committed_scenario_bundles_match_the_generator():
    assert main(["--check"]) == 0, "run: .venv/bin/python -m fixtures.build"
