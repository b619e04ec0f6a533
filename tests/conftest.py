"""Shared fixtures: accounts named after their roles, fresh deployments, conservation checks.

Ape wraps every test in a chain snapshot, so module-scoped deployments are cheap and each test
starts from the same state.
"""

import functools
import os

import ape
import ape_ethereum.ecosystem
import ape_ethereum.trace
import ape_test.accounts
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

# Speed, not behaviour (issue 8). On every reverted transaction Ape renders the call tree,
# and to label addresses it asks whether each is a test account, which derives all 80 test
# keys from the mnemonic again (~20 ms each: 1.6 s per revert). The keys never change: derive
# them once. The rendered tree is only printed (pytest captures it) and costs a
# debug_traceTransaction per revert; `ape.reverts` checks the reason without it. Set
# POWERHIVE_SHOW_TRACES=1 to get the trees back when debugging a test.
ape_test.accounts.generate_dev_accounts = functools.cache(ape_test.accounts.generate_dev_accounts)
if not os.environ.get("POWERHIVE_SHOW_TRACES"):
    ape_ethereum.trace.Trace.show = lambda self, *args, **kwargs: None

# `ape test --gas` traces every call; Anvil's call traces carry no return data, and Ape 0.8.51
# then fails decoding a view that returns a struct ("'NoneType' object is not iterable")
# instead of treating it as an empty result, as it does for other types. Empty return data
# is a decoding error for any function with outputs: Ape's trace enrichment handles that.
_decode_returndata = ape_ethereum.ecosystem.Ethereum.decode_returndata


def _decode_returndata_or_fail(self, abi, raw_data):
    if not raw_data and abi.outputs:
        raise ape_ethereum.ecosystem.DecodingError("empty return data")
    return _decode_returndata(self, abi, raw_data)


ape_ethereum.ecosystem.Ethereum.decode_returndata = _decode_returndata_or_fail

ZERO = "0x0000000000000000000000000000000000000000"
EEURO = 10**6  # one eEuro in base units
HVT = 10**18
# Hang guard of one stateful test (seconds): ~5 min idle at the default depth, so this leaves
# room for a host several times slower than idle.
FUZZ_TIMEOUT = int(os.environ.get("POWERHIVE_FUZZ_TIMEOUT", "2400"))


@pytest.fixture(scope="session")
def deployer(accounts):
    """Deploys everything; the governance address until the Council takes over."""
    return accounts[0]


@pytest.fixture(scope="session")
def banker(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def alice(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def bob(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def attacker(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def treasury(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def carol(accounts):
    """A third trader."""
    return accounts[7]


@pytest.fixture(scope="session")
def dave(accounts):
    """A fourth trader."""
    return accounts[8]


@pytest.fixture(scope="session")
def council_stand_in(accounts):
    """An address that plays the Council's part for ownership hand-over tests."""
    return accounts[6]


@pytest.fixture(scope="session", autouse=True)
def every_role(deployer, banker, alice, bob, attacker, treasury, carol, dave, council_stand_in):
    """Every shared role exists before the first test: a session fixture first requested in the
    middle of a module makes Ape rebase its chain isolation (InvalidIsolationWarning)."""


@pytest.fixture(scope="module")
def eeuro(project, deployer):
    return deployer.deploy(project.EEuro, deployer)


@pytest.fixture(scope="module")
def eeuro_banked(project, deployer, banker):
    """A separate eEuro deployment with its banker set."""
    token = deployer.deploy(project.EEuro, deployer)
    token.set_banker(banker, sender=deployer)
    return token


@pytest.fixture(scope="module")
def hvt(project, deployer, treasury):
    return deployer.deploy(project.HiveToken, treasury)


def token_holders(token) -> set[str]:
    """Every address that ever sent or received `token`, from its Transfer events."""
    seen: set[str] = set()
    for log in token.Transfer.range(0, ape.chain.blocks.height + 1):
        seen.add(log.sender)
        seen.add(log.receiver)
    seen.discard(ZERO)
    return seen


def assert_supply_conserved(token) -> int:
    """The supply equals the sum of balances of every holder; returns that supply."""
    total = sum(token.balanceOf(a) for a in token_holders(token))
    assert token.totalSupply() == total
    return total


def sign_permit(token, owner, spender, value, deadline, nonce=None, signer=None):
    """EIP-2612 permit signature (v, r, s) by `signer` (default: `owner`)."""
    signer = signer or owner
    name, version, chain_id, contract = token.eip712Domain()[1:5]
    data = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": {
            "owner": owner.address,
            "spender": spender.address,
            "value": value,
            "nonce": token.nonces(owner) if nonce is None else nonce,
            "deadline": deadline,
        },
    }
    signed = Account.sign_message(encode_typed_data(full_message=data), signer.private_key)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def pytest_terminal_summary(terminalreporter):
    """How deep each stateful test went (examples, steps), from the `fuzz_depth` property
    every machine records; the reports carry it across xdist workers too."""
    lines = [
        value
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call"
        for name, value in report.user_properties
        if name == "fuzz_depth"
    ]
    if lines:
        terminalreporter.section("stateful test depth")
        for line in sorted(lines):
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items):
    """The stateful tests first: they are the longest files, and with `--dist loadfile` a
    long file that starts last is the run's tail. Stable: the rest keeps its order.

    A stateful test is bounded by its examples x steps, not by time: the suite-wide hang
    guard (`timeout` in pyproject.toml, 600 s) would fail a healthy machine run on a loaded
    host (seen: the ledger machine past 600 s with four other processes on both cores). It
    gets `FUZZ_TIMEOUT` instead, still a guard against a real hang, unless the test sets
    its own `timeout` mark or `--timeout` is given (`make fuzz` gives 0)."""
    items.sort(key=lambda item: "tests/fuzz/" not in item.nodeid)
    if items and items[0].config.getoption("timeout", None) is not None:
        return  # `--timeout` given: it applies to every test
    for item in items:
        if "tests/fuzz/" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FUZZ_TIMEOUT))
