"""Start-up pays the first use of the FHIR models: no first card in a worker builds one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter (this test process has long since imported every model): build the app as
# `bonecds serve` does before forking, answer every scenario, and name the fhir.resources modules
# that were imported only then.
SCRIPT = """
import json, logging, os, sys
os.environ.update(BONECDS_AUTH="off", BONECDS_NOW="2026-10-15T10:00:00Z",
                  DATABASE_URL="sqlite:///" + sys.argv[1])
logging.disable(logging.CRITICAL)
from service import create_app
from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import all_scenarios

app = create_app()
built = {m for m in sys.modules if m.startswith("fhir.resources")}
client = app.test_client()
services = app.extensions["bonecds"].services
late, cards = {}, 0
for s in all_scenarios():
    body = scenario_request(
        services[s.service_id], s, resources=transaction_resources(s.patient.transaction())
    )
    answer = client.post(f"/cds-services/{s.service_id}", json=body)
    assert answer.status_code == 200, (s.name, answer.status_code)
    cards += sum(len(c.get("suggestions", [])) for c in answer.get_json()["cards"])
    for module in {m for m in sys.modules if m.startswith("fhir.resources")} - built:
        late[module] = s.name
        built.add(module)
print(json.dumps({"late": late, "suggestions": cards}))
"""


def test_every_fhir_model_a_suggestion_uses_is_built_at_start_up(tmp_path):
    run = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", SCRIPT, str(tmp_path / "warm.sqlite3")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["suggestions"] > 100  # the scenarios did render suggested resources
    assert found["late"] == {}, f"built on a clinician's call, not at start-up: {found['late']}"
