"""Fixtures of the ledger's unit tests: accounts by role and a ledger the deployer governs."""

import pytest


@pytest.fixture(scope="session")
def unit(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def unit2(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def unit_owner(accounts):
    return accounts[10]


@pytest.fixture(scope="session")
def producer(accounts):
    return accounts[11]


@pytest.fixture(scope="session")
def consumer(accounts):
    return accounts[12]


@pytest.fixture(scope="module", autouse=True)
def ledger_roles(unit, unit2, unit_owner, producer, consumer):
    """These roles exist before a module's first test (module scope: some modules name their own
    `unit`): a session fixture first requested mid-module makes Ape rebase its isolation."""


@pytest.fixture(scope="module")
def ledger(project, deployer, unit, unit2, unit_owner):
    led = deployer.deploy(project.EnergyLedger, deployer)
    led.register_storage_unit(unit, unit_owner, sender=deployer)
    led.register_storage_unit(unit2, unit_owner, sender=deployer)
    return led
