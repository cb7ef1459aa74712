"""scripts/count_instructions.py: its measured child answers the bench's bodies through the whole
app (also with parts of a call switched off), and without valgrind it says so instead of printing
figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "count_instructions.py"
SIGN = "/cds-services/bonecds-order-sign"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (this interpreter and the project's script)
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_child_answers_the_bench_bodies(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench

    bodies = bench.build_bodies(tmp_path)
    for name in ("typical", "with-card"):
        for path in ("/cds-services/bonecds-order-sign", "/bench/floor"):
            done = run("--child", str(bodies[name]["path"]), path, "3")
            assert done.returncode == 0, done.stdout + done.stderr


def test_a_request_that_is_not_answered_fails_the_child(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"hook": "order-sign"}')
    done = run("--child", str(broken), "/cds-services/bonecds-order-sign", "1")
    assert done.returncode != 0 and "answered 400" in done.stderr


def test_without_valgrind_it_says_how_to_install_it(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no valgrind on this PATH
    done = run("typical", env=env)
    assert done.returncode == 2 and "apt-get install valgrind" in done.stderr


def test_the_child_answers_with_every_part_switched_off(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import count_instructions

    import bench

    bodies = bench.build_bodies(tmp_path)
    every_part = ",".join(count_instructions.PARTS)
    done = run("--child", str(bodies["with-card"]["path"]), SIGN, "3", every_part)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_unknown_part_is_refused_before_anything_is_counted():
    done = run("typical", "--without", "metrics,rules")
    assert done.returncode == 2 and "unknown part 'rules'" in done.stderr
    assert "call-log" in done.stderr  # the message lists the parts there are
