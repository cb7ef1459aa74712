"""scripts/bench.py's alternating rounds: how a measuring time is cut into rounds, and how the
rounds of one scenario become one figure (medians of latency and rate, sums of requests and
errors)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402 (the script's folder goes on the path first)


def result(p50: float, rps: float, *, errors: int = 0, stored: int = 0) -> bench.WrkResult:
    return bench.WrkResult(
        p50,
        p50 + 1,
        rps,
        int(rps * 2),
        errors,
        {"connect": 0, "read": errors, "write": 0, "timeout": 0},
        {"responses": int(rps * 2), "fb_stored": stored},
        2.0,
    )


def test_a_full_run_takes_five_rounds_of_two_seconds_and_a_quick_one_three_of_one():
    assert bench.rounds_for(10) == (5, 2)
    assert bench.rounds_for(3) == (3, 1)
    assert bench.rounds_for(1) == (1, 1)


def test_one_slow_round_does_not_move_the_figure_and_counts_add_up():
    rounds = [result(1.0, 1000), result(1.1, 950, errors=2, stored=5), result(3.0, 300)]
    combined = bench.combined(rounds)
    assert (combined.p50_ms, combined.p99_ms, combined.rps) == (1.1, 2.1, 950)
    assert combined.requests == 2000 + 1900 + 600
    assert combined.non_2xx == 2 and combined.socket_errors["read"] == 2
    assert combined.counts == {"responses": 4500, "fb_stored": 5}
    assert combined.duration_s == 6.0


def test_a_slow_spell_falls_on_floor_and_scenario_alike():
    """The machine halves its speed in the third round: the ratio of the medians stays 0.5, where a
    floor measured before the spell and a scenario measured in it would have given 0.25."""
    floor = bench.combined([result(1.0, 2000), result(1.0, 2000), result(2.0, 1000)])
    scenario = bench.combined([result(2.0, 1000), result(2.0, 1000), result(4.0, 500)])
    assert scenario.rps / floor.rps == 0.5


def test_the_fhir_path_and_its_queries_at_once_are_measured_in_turns(monkeypatch):
    """The batch-off FHIR row and its reference (all queries at once) alternate round by round, so
    a slow spell of the FHIR server falls on both; the reference is the median over the rounds."""
    calls: list[str] = []
    speed = iter([1.0, 1.0, 2.0, 1.0, 1.0])  # the machine slows down in the third round

    def queries_at_once(*_args, **_kwargs) -> float:
        calls.append("at once")
        factor = next(speed)
        calls.append(f"x{factor:g}")
        return 30.0 * factor

    def service_round(_service, _url, concurrency, seconds, _env):
        assert (concurrency, seconds) == (1, 2)
        calls.append("service")
        factor = float(calls[-2][1:])
        return result(33.0 * factor, 30.0 / factor), {1: 0.05 * factor}

    monkeypatch.setattr(bench, "time_parallel_queries", queries_at_once)
    monkeypatch.setattr(bench, "_sampled_run", service_round)
    measured, cpu, split, at_once = bench.measure_against_queries_at_once(
        None, "url", {}, 10, "base", "token", {}, 20
    )
    assert (
        calls
        == ["at once", "x1", "service"] * 2
        + ["at once", "x2", "service"]
        + [
            "at once",
            "x1",
            "service",
        ]
        * 2
    )
    assert (measured.p50_ms, at_once) == (33.0, 30.0)
    assert measured.requests == 5 * 60 - 30  # the slow round answered half as many
    assert split == "100" and cpu is not None
