"""Session fixture for the integration tests: a FHIR R4 server from FHIR_BASE_URL, or a local sekmet
started for the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fhir_server.harness import (
    FhirServer,
    fhir_server_from_environment,
    start_local_fhir_server,
    stop_local_fhir_server,
)


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    external = fhir_server_from_environment()
    if external is not None:
        yield external
        return
    # No skip when the server cannot start: start_local_fhir_server raises, so a broken install
    # fails CI.
    server, proc = start_local_fhir_server(tmp_path_factory.mktemp("fhir-server"))
    try:
        yield server
    finally:
        stop_local_fhir_server(proc)
