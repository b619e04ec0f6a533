"""Ballot calldata decoded into contract, function and human arguments by the deployment's
ABIs (offline: the compiled contracts, made-up addresses)."""

import pytest
from web3 import Web3

from oracle.deployments import ContractRecord, Deployment
from powerhive.actions import ACTIONS, MEMBER_CALLS, Decimals, parse_arg
from powerhive.ballots import Ballot, action_key, decode_call, find_ballot
from powerhive.errors import AmountError, BallotError

NAMES = [
    "Council", "EnergyLedger", "EEuro", "OrderBook", "HiveToken", "Beekeeper", "Bridge",
    "HiveMarket",
]  # fmt: skip


@pytest.fixture(scope="module")
def deployment(project):
    contracts = {}
    for i, name in enumerate(NAMES, start=1):
        abi = [
            item.model_dump(mode="json", by_alias=True)
            for item in getattr(project, name).contract_type.abi
        ]
        contracts[name] = ContractRecord(address=f"0x{i:040x}", block=1, abi=abi)
    return Deployment(31337, "test", f"0x{99:040x}", 1, "cancun", contracts)


def calldata(deployment, name, fn, *args):
    c = Web3().eth.contract(abi=deployment.contracts[name].abi)
    return bytes.fromhex(c.encode_abi(fn, args=list(args))[2:])


def test_council_and_ledger_calls(deployment):
    voter = "0x" + "ab" * 20
    call = decode_call(
        deployment,
        deployment.contracts["Council"].address,
        calldata(deployment, "Council", "add_voter", Web3.to_checksum_address(voter)),
    )
    assert call.describe() == f"Council.add_voter(voter={Web3.to_checksum_address(voter)})"
    assert call.action == "add-voter"
    ledger = deployment.contracts["EnergyLedger"].address
    data = calldata(
        deployment,
        "EnergyLedger",
        "set_parameters",
        5 * 10**17,
        5 * 10**17,
        2 * 10**17,
        10**17,
        3600,
    )
    call = decode_call(deployment, ledger, data)
    assert dict(call.args) == {
        "max_mint_cost": "0.5 (50%)",
        "max_burn_cost": "0.5 (50%)",
        "recovery_share": "0.2 (20%)",
        "storage_fee": "0.1 (10%)",
        "session_lifetime": "1h (3600 s)",
    }
    data = calldata(
        deployment,
        "EnergyLedger",
        "set_unit_max_report",
        deployment.contracts["Council"].address,
        13_500,
    )
    call = decode_call(deployment, ledger, data)
    assert dict(call.args)["max_report_wh"] == "13.500 kWh"
    assert "(Council)" in dict(call.args)["unit"]  # addresses of the deployment are named


def test_book_rules_banker_and_unknown_calls(deployment):
    book = deployment.contracts["OrderBook"].address
    data = calldata(deployment, "OrderBook", "set_rules", 2_000, 10**15, 10**16)
    assert dict(decode_call(deployment, book, data).args) == {
        "tick_size": "0.002 EUR/kWh",
        "lot_size": "0.001 kWh",
        "min_size": "0.010 kWh",
    }
    eeuro = deployment.contracts["EEuro"].address
    data = calldata(deployment, "EEuro", "set_banker", "0x" + "00" * 20)
    assert "revoke" in decode_call(deployment, eeuro, data).describe()
    # Not in the catalog: decoded from the ABI alone.
    data = calldata(deployment, "EEuro", "transfer_ownership", book)
    assert decode_call(deployment, eeuro, data).describe() == (
        f"EEuro.transfer_ownership(new_owner={book} (OrderBook))"
    )
    # Another address with a known selector: decoded, with a note.
    data = calldata(deployment, "OrderBook", "set_rules", 1_000, 10**15, 10**16)
    call = decode_call(deployment, "0x" + "77" * 20, data)
    assert call.function == "set_rules" and "not a contract of the deployment" in call.note
    call = decode_call(deployment, eeuro, b"\x12\x34\x56\x78")
    assert call.function is None and "unknown call 0x12345678" in call.describe()


def test_bridge_limit_uses_the_token_decimals(deployment):
    bridge = deployment.contracts["Bridge"].address
    eeuro = deployment.contracts["EEuro"].address
    data = calldata(deployment, "Bridge", "set_limit", eeuro, 1, 1_000 * 10**6, 10**6, 50 * 10**6)
    args = dict(decode_call(deployment, bridge, data).args)
    assert args["capacity"] == "1,000" and args["max_per_transfer"] == "50"
    assert args["direction"].startswith("in")
    dec = Decimals(deployment)
    assert (
        parse_arg(
            "amount:token", "2.5", what="capacity", args={"token": eeuro}, target=bridge, dec=dec
        )
        == 2_500_000
    )


def test_every_action_names_a_function_of_its_contract(deployment):
    for action in ACTIONS.values():
        abi = deployment.contracts[action.contract].abi
        fn = [i for i in abi if i.get("type") == "function" and i["name"] == action.function]
        assert fn, action.name
        assert [i["name"] for i in fn[0]["inputs"]] == [p.name for p in action.params]


def test_every_member_call_kind_names_an_argument(deployment):
    for (contract, function), kinds in MEMBER_CALLS.items():
        abi = deployment.contracts[contract].abi
        (fn,) = [i for i in abi if i.get("type") == "function" and i["name"] == function]
        assert set(kinds) <= {i["name"] for i in fn["inputs"]}, function


def test_hive_market_settings_in_human_units(deployment):
    market = deployment.contracts["HiveMarket"].address
    to = Web3.to_checksum_address("0x" + "fe" * 20)
    call = decode_call(deployment, market, calldata(deployment, "HiveMarket", "set_fee", 50, to))
    assert call.describe() == f"HiveMarket.set_fee(fee_bps=0.5% (50 bps), fee_to={to})"
    assert call.action == "set-hive-fee"
    data = calldata(deployment, "HiveMarket", "set_tariff_bounds", 500, 2_500)
    assert dict(decode_call(deployment, market, data).args) == {
        "tariff_min": "0.05 per kWh",
        "tariff_max": "0.25 per kWh",
    }
    data = calldata(deployment, "HiveMarket", "enrol", 3, [to], [5_250])
    assert dict(decode_call(deployment, market, data).args)["max_wh"] == "5.250 kWh"
    dec = Decimals(deployment)
    kw = dict(args={}, target=market, dec=dec)
    assert parse_arg("bps", "2.5%", what="fee_bps", **kw) == 250
    assert parse_arg("tariff", "0.2", what="t", **kw) == 2_000
    with pytest.raises(AmountError, match="give a percentage"):
        parse_arg("bps", "50", what="fee_bps", **kw)
    with pytest.raises(AmountError, match="too many decimals"):
        parse_arg("tariff", "0.00001", what="t", **kw)


def test_find_ballot_by_key_prefix(deployment):
    target = deployment.contracts["Council"].address
    key = action_key(target, b"\x01\x02\x03\x04")
    ballot = Ballot(key, None, target, 1, 0, 1, 0, False)
    assert find_ballot([ballot], key[:10]) is ballot
    with pytest.raises(BallotError, match="no open ballot"):
        find_ballot([ballot], "0xffffffffff")
    with pytest.raises(BallotError, match="at least 6 hex digits"):
        find_ballot([ballot], "0x12")
