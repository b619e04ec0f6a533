"""Fixtures for the oracle's tests: a ledger on an Anvil of our own, units, accounts by role."""

from __future__ import annotations

import pytest

from tests.oracle import artifacts
from tests.oracle.rig import (
    Anvil,
    Counters,
    OracleProcess,
    OracleSetup,
    deploy_ledger,
    ledger_artifact,
    make_unit,
)


@pytest.fixture(autouse=True)
def _no_stray_oracles():
    """Kill any `oracle run` a test started and left running (a failed assertion, say)."""
    yield
    while OracleProcess.started:
        OracleProcess.started.pop().kill()


@pytest.fixture(scope="session")
def compiled(request) -> artifacts.Compiled:
    """name -> (abi, deployment bytecode): from Ape's `project` under `ape test`, from the
    manifest in `.build` when the tests run without Ape (the oracle's 3.13 venv)."""
    if request.config.pluginmanager.has_plugin("ape_test"):
        return artifacts.from_ape(request.getfixturevalue("project"))
    try:
        return artifacts.from_build()
    except artifacts.StaleBuild as exc:
        pytest.exit(str(exc), returncode=4)


@pytest.fixture(scope="session")
def artifact(compiled):
    """The ledger under test (see `rig.LEDGER_CONTRACT`)."""
    return ledger_artifact(compiled)


@pytest.fixture(scope="module")
def anvil():
    """A module's own chain (Ape's provider is not used: tests here kill and restart chains)."""
    with Anvil() as chain:
        yield chain


@pytest.fixture(scope="module")
def w3(anvil):
    return anvil.w3()


@pytest.fixture(scope="module")
def deployments_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deployments")


@pytest.fixture(scope="module")
def ledger(w3, artifact, deployments_dir):
    return deploy_ledger(w3, artifact, deployments_dir)


@pytest.fixture(scope="module")
def producer(w3):
    return w3.eth.accounts[1]


@pytest.fixture(scope="module")
def consumer(w3):
    return w3.eth.accounts[2]


@pytest.fixture(scope="module")
def second_producer(w3):
    return w3.eth.accounts[3]


@pytest.fixture
def unit(w3, tmp_path):
    """A fresh storage-unit key, funded for gas, not registered."""
    return make_unit(w3, tmp_path)


@pytest.fixture
def registered_unit(unit, ledger):
    ledger.register(unit.address)
    return unit


@pytest.fixture
def setup(tmp_path, anvil, deployments_dir, registered_unit):
    """An oracle configuration skeleton for `registered_unit` on the module's chain."""
    return OracleSetup(
        root=tmp_path, rpc_url=anvil.url, deployments_dir=deployments_dir, unit=registered_unit
    )


@pytest.fixture
def counters(tmp_path):
    return Counters(tmp_path, "meter")


@pytest.fixture
def site(setup, counters, producer, consumer, ledger):
    """One inverter meter: export is PV production (producer), import goes to the consumer.
    The consumer holds a session with the unit."""
    ledger.open_session(consumer, setup.unit.address)
    setup.meters = [counters.meter("inverter")]
    setup.channels = [
        {"meter": "inverter", "counter": "export", "kind": "produced", "account": producer},
        {"meter": "inverter", "counter": "import", "kind": "consumed", "account": consumer},
    ]
    return setup
