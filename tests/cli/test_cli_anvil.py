"""The `powerhive` CLI end to end against Anvil: the protocol deployed by the deploy path
(`deploy_protocol` + the deployments file), every step through the CLI only."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from eth_account import Account

from powerhive.ballots import action_key
from powerhive.cli import main
from scripts._bridge_deploy import deploy_bridge
from scripts._protocol import deploy_protocol, governed, save_protocol

PASS = "correct horse"


@pytest.fixture(scope="module")
def env(accounts, chain, tmp_path_factory):
    """Deployed protocol, its deployments dir and fast keystores for every role."""
    root = tmp_path_factory.mktemp("cli")
    protocol = deploy_protocol(accounts[0], treasury=accounts[5].address)
    deploy_bridge(protocol)  # unpeered: the bridge test peers it through the CLI
    save_protocol(protocol, "ethereum:local:foundry", force=True, directory=root / "deployments")
    keys = {}
    roles = {
        "voter1": 0,
        "voter2": 13,
        "banker": 1,
        "alice": 2,
        "bob": 3,
        "owner": 20,
        "worker": 21,
    }
    for role, i in roles.items():
        # A cheap scrypt (n=2**10): the CLI reads any v3 keystore; speed is for the tests.
        data = Account.encrypt(accounts[i].private_key, PASS, kdf="scrypt", iterations=2**10)
        path = root / f"{role}.json"
        path.write_text(json.dumps(data))
        keys[role] = path
    # Roles every test starts from (Ape reverts the chain after each test): a unit, the
    # banker and ENT for alice; the governance tests vote on other actions.
    unit, banker, alice = accounts[8], accounts[1], accounts[2]
    governed(
        protocol, [accounts[0]], protocol.EnergyLedger, "register_storage_unit", unit, accounts[10]
    )
    governed(protocol, [accounts[0]], protocol.EEuro, "set_banker", banker)
    protocol.EnergyLedger.energy_produced(alice, 12_500, 1, sender=unit)
    # Hive 1 of `owner` with meters 21 (the worker) and 22, on eEuro; its market not open.
    owner, keeper = accounts[20], protocol.Beekeeper
    for meter in (accounts[21], accounts[22]):
        governed(protocol, [accounts[0]], keeper, "add_meter", meter, owner, "SN", "Acme")
    cost = keeper.hive_cost() + 2 * keeper.meter_cost()
    protocol.HiveToken.transfer(owner, cost, sender=accounts[5])
    protocol.HiveToken.approve(keeper, cost, sender=owner)
    keeper.create_hive(protocol.EEuro, [accounts[21], accounts[22]], sender=owner)
    for who in (owner, accounts[21]):
        protocol.EEuro.mint(who, 100 * 10**6, sender=banker)
    base = ["--rpc", chain.provider.uri, "--deployments", str(root / "deployments")]
    return dict(protocol=protocol, keys=keys, base=base, accounts=accounts, root=root)


def run(env, *args, who=None, ok=True, passphrase=PASS):
    runner = CliRunner(mix_stderr=False)
    extra = ["--keystore", str(env["keys"][who])] if who else []
    result = runner.invoke(
        main,
        [*env["base"], *extra, *args],
        env={"POWERHIVE_PASSPHRASE": passphrase},
        prog_name="powerhive",
    )
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def fails(env, *args, who=None, passphrase=PASS, match=""):
    result = run(env, *args, who=who, ok=False, passphrase=passphrase)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert match in lines[0], lines[0]
    return lines[0]


def ballot_id(text: str) -> str:
    return re.search(r"ballot (0x[0-9a-f]{8})", text)[1]


def test_vote_proposed_by_one_voter_passed_by_a_second(env):
    p, a = env["protocol"], env["accounts"]
    voter2, banker = a[13], a[6]
    out = run(env, "propose", "add-voter", voter2.address, who="voter1").stdout
    assert "passed" in out  # one voter: the proposal passes at once
    assert p.Council.is_voter(voter2)
    # Two voters now: a proposal needs the second one.
    dry = run(env, "propose", "set-banker", banker.address, "--dry-run", who="voter1").stdout
    assert f"EEuro.set_banker(new_banker={banker.address})" in dry and "nothing sent" in dry
    assert p.EEuro.banker() != banker.address
    out = run(env, "propose", "set-banker", banker.address, who="voter1").stdout
    bid = ballot_id(out)
    data = p.EEuro.set_banker.encode_input(banker)
    key = p.Council.action_key(p.EEuro, data)
    assert (
        action_key(p.EEuro.address, data) == "0x" + bytes(key).hex()
        and f"key 0x{bytes(key).hex()}" in out
    )
    listing = run(env, "ballots").stdout
    assert f"EEuro.set_banker(new_banker={banker.address})" in listing
    assert "YES 1 / NO 0 of 2 voters" in listing
    assert f"{voter2.address} -" in listing and f"{a[0].address} YES" in listing
    fails(env, "vote", bid, who="voter1", match="already voted YES")
    out = run(env, "vote", bid, who="voter2").stdout
    assert "passed with 2 of 2 voters" in out
    assert p.EEuro.banker() == banker.address
    assert "no open ballots" in run(env, "ballots").stdout


def test_ledger_parameters_in_human_units(env):
    p = env["protocol"]
    before = p.EnergyLedger.params()
    out = run(env, "propose", "set-ledger-params", "--recovery-share", "20%", "--dry-run").stdout
    assert "recovery_share=0.2 (20%)" in out
    assert f"session_lifetime={before.session_lifetime // 3600}h" in out
    fails(
        env,
        "propose",
        "set-ledger-params",
        "--storage-fee",
        "0.1234567890123456789",
        "--dry-run",
        match="too many decimals",
    )


def test_order_placed_previewed_and_cancelled(env):
    p, a = env["protocol"], env["accounts"]
    alice = a[2]
    ledger, book = p.EnergyLedger, p.OrderBook
    ent_before = ledger.balanceOf(alice)
    out = run(env, "order", "sell", "2.5", "0.21", who="alice").stdout
    assert "rests 2.500 kWh" in out
    (order_line,) = [ln for ln in run(env, "orders", alice.address).stdout.splitlines()]
    assert "ask 2.500 kWh at 0.210 EUR/kWh" in order_line
    assert ledger.balanceOf(book) == 25 * 10**17
    preview = run(env, "order", "buy", "1", "0.25", "--dry-run", who="bob").stdout
    assert "fill 1.000 kWh at 0.210 EUR/kWh = 0.21 EUR" in preview
    fails(env, "order", "sell", "1.0001", "0.21", who="alice", match="not a multiple")
    fails(env, "order", "sell", "1", "0.2105", who="alice", match="not a multiple")
    fails(env, "order", "sell", "1", "0.2100001", who="alice", match="too many decimals")
    oid = order_line.split()[0]
    out = run(env, "order", "cancel", oid, who="alice").stdout
    assert "cancelled order" in out and "2.500 kWh" in out
    assert ledger.balanceOf(alice) == ent_before and ledger.balanceOf(book) == 0
    fails(env, "order", "cancel", oid, who="alice", match="book: unknown order")


def test_session_start_and_close(env, chain):
    p, a = env["protocol"], env["accounts"]
    alice, unit = a[2], a[8]
    ledger = p.EnergyLedger
    out = run(env, "session", "start", unit.address, "1", who="alice").stdout
    assert "1.000 kWh escrowed" in out
    assert "escrow   1.000 kWh" in run(env, "balance", alice.address).stdout
    out = run(env, "session", "close", unit.address, who="alice").stdout
    assert "session ended" in out
    assert ledger.session(alice, unit).expired
    fails(env, "session", "close", unit.address, who="alice", match="ledger: session in grace")
    chain.pending_timestamp = ledger.session(alice, unit).grace_ends_at + 1
    chain.mine()
    before = ledger.balanceOf(alice)
    out = run(env, "session", "close", unit.address, who="alice").stdout
    assert "session settled: 1.000 kWh refunded, 1.000 kWh back to the unit" in out
    assert ledger.balanceOf(alice) == before + 10**18 and ledger.total_escrow() == 0


def test_redemption_lock_and_banker_burn(env):
    p, a = env["protocol"], env["accounts"]
    bob = a[3]
    eeuro = p.EEuro
    run(env, "banker", "mint", bob.address, "10", who="banker")
    out = run(env, "redeem", "4.5", who="bob").stdout
    assert "4.50 EUR await the banker" in out
    queue = run(env, "banker", "queue").stdout
    assert f"{bob.address} 4.50 EUR" in queue
    fails(env, "banker", "burn", bob.address, "5", who="banker", match="burn exceeds locked")
    fails(env, "banker", "burn", bob.address, "1", who="bob", match="not the banker")
    run(env, "banker", "burn", bob.address, "4.5", who="banker")
    assert eeuro.locked(bob) == 0 and eeuro.total_locked() == eeuro.balanceOf(eeuro)
    assert eeuro.balanceOf(bob) == 5_500_000
    assert "total locked 0.00 EUR" in run(env, "banker", "queue").stdout


def test_bad_input_is_one_line(env):
    a = env["accounts"]
    fails(env, "vote", "0xdeadbeef00", who="voter1", match="no open ballot")
    fails(env, "vote", "xyz", who="voter1", match="at least 6 hex digits")
    fails(env, "hive", "enrol", "1", match="Missing argument 'WORKERS...'")
    fails(env, "bridge", "lock", "ENT", "1", match="Missing argument 'RECIPIENT'")
    fails(env, "worker", "prepay", "1", "--bogus", match="No such option: --bogus")
    # The top-level options are parsed before any command: their errors are one line too.
    fails(env, "--chain-id", "abc", "ballots", match="'abc' is not a valid integer")
    fails(env, "--bogus", "ballots", match="No such option: --bogus (see powerhive --help)")
    fails(env, "--keystore", match="Option '--keystore' requires an argument")
    fails(env, "nosuch", match="No such command 'nosuch'")
    fails(env, "--rpc", "not-a-url", "ballots", match="cannot reach the node at not-a-url")
    fails(env, "redeem", "1.0000001", who="bob", match="too many decimals")
    fails(env, "redeem", "1e3", who="bob", match="not a non-negative decimal")
    fails(env, "--chain-id", "4242", "ballots", match="not chain 4242")
    fails(env, "redeem", "1", who="bob", passphrase="wrong", match="wrong passphrase")
    fails(env, "propose", "add-voter", "0x1234", "--dry-run", match="not an Ethereum address")
    fails(env, "propose", "add-voter", a[4].address, who="alice", match="council: not a voter")
    result = CliRunner(mix_stderr=False).invoke(
        main, ["--rpc", "http://127.0.0.1:9", "--deployments", str(env["root"]), "ballots"]
    )
    assert result.exit_code == 1 and "cannot reach the node" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = CliRunner(mix_stderr=False).invoke(
        main, [*env["base"][:2], "--deployments", str(env["root"] / "none"), "ballots"]
    )
    assert result.exit_code == 1 and "no deployment for chain" in result.stderr


def test_console_script_wrong_chain_is_one_line(env):
    """The installed `powerhive` command itself (not CliRunner): one line, exit 1."""
    import shutil
    import subprocess

    exe = shutil.which("powerhive")
    assert exe, "powerhive is not installed (pip install -e .)"
    done = subprocess.run(
        [exe, *env["base"], "--chain-id", "1", "ballots"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"Error: the node at {env['base'][1]} is chain 31337, not chain 1 (--chain-id)"
    ]


EUR = 10**6
ZERO = "0x0000000000000000000000000000000000000000"


def test_hive_owner_and_worker(env):
    """Open a market, queen, tariffs, enrol, deposit, a worker's prepay and withdraw, and
    every refusal as one line; the market's eEuro is the deposit plus the worker's balance."""
    p, a = env["protocol"], env["accounts"]
    market, eeuro = p.HiveMarket, p.EEuro
    owner, w, queen = a[20], a[21], a[23]
    out = run(env, "hive", "open-market", "1", "15m", queen.address, "--dry-run").stdout
    assert f"HiveMarket.open_market(hive=1, period_seconds=15m (900 s), queen={queen}" in out
    assert "nothing sent" in out and market.coin_of(1) == ZERO
    fails(env, "hive", "show", "1", match="hive 1 has no open market")
    fails(env, "hive", "open-market", "1", "15m", queen.address, who="worker", match="market:")
    out = run(env, "hive", "open-market", "1", "15m", queen.address, who="owner").stdout
    assert "event    MarketOpened(hive=1" in out and market.coin_of(1) == eeuro.address
    run(env, "hive", "set-queen", "1", a[24].address, who="owner")
    assert market.queen_of(1) == a[24]
    fails(env, "hive", "set-queen", "1", a[23].address, who="worker", match="market:")
    out = run(env, "hive", "set-tariffs", "1", "--grid-buy", "0.25", who="owner").stdout
    assert "grid_buy=0.25 per kWh, grid_sell=0.05 per kWh" in out
    assert market.pending_tariffs(1)[:4] == (2500, 500, 1000, 1000)
    assert "pending  grid buy 0.25, grid sell 0.05" in run(env, "hive", "show", "1").stdout
    fails(env, "hive", "set-tariffs", "1", "--hive-sell", "0.00001", who="owner",
          match="too many decimals")  # fmt: skip
    fails(env, "hive", "set-tariffs", "1", "--hive-sell", "1.5", who="owner",
          match="market: tariff out of bounds")  # fmt: skip
    fails(env, "hive", "enrol", "1", w.address, who="owner", match="give WORKER=MAX_KWH")
    out = run(env, "hive", "enrol", "1", f"{w.address}=5", who="owner").stdout
    assert f"workers={w.address}, max_wh=5.000 kWh" in out
    assert market.worker(w).max_wh == 5_000
    fails(env, "hive", "enrol", "1", f"{a[22].address}=1", who="worker", match="market:")

    before = eeuro.balanceOf(owner)
    out = run(env, "hive", "deposit", "1", "20", who="owner").stdout
    assert "HiveMarket.deposit(hive=1, amount=20)" in out
    fails(env, "hive", "deposit", "1", "0.0000001", who="owner", match="too many decimals")
    run(env, "hive", "withdraw-deposit", "1", "5", who="owner")
    fails(env, "hive", "withdraw-deposit", "1", "1", who="worker", match="not the hive owner")
    assert market.deposit_of(1) == 15 * EUR and eeuro.balanceOf(owner) == before - 15 * EUR

    fails(env, "worker", "prepay", "1", who="alice", match="is not a worker of any hive")
    run(env, "worker", "prepay", "10", who="worker")
    # Period 0 has started: it reserves 5 kWh at the higher grid buy tariff, 0.25 EUR/kWh.
    reserve = 5_000 * 2_500 * EUR // 10**7
    assert market.withdraw_reserve(w) == reserve == 1_250_000
    fails(env, "worker", "withdraw", "9", who="worker", match="market: balance reserved")
    run(env, "worker", "withdraw", "4", who="worker")
    shown = run(env, "worker", "show", w.address).stdout
    assert "balance  6 EUR" in shown and "free     4.75 EUR withdrawable now" in shown
    assert eeuro.balanceOf(market) == market.deposit_of(1) + market.worker(w).balance
    assert eeuro.balanceOf(w) == 100 * EUR - 6 * EUR

    fails(env, "hive", "remove-worker", "1", w.address, who="worker", match="not the hive owner")
    out = run(env, "hive", "remove-worker", "1", w.address, who="owner").stdout
    assert "event    WorkerRemoved(hive=1" in out and market.worker(w).max_wh == 0


def test_bridge_settings_lock_and_pending(env):
    """The bridge peered and a token listed by `propose`, then a lock and its pending
    listing; the bridge holds exactly what was locked."""
    p, a = env["protocol"], env["accounts"]
    bridge, ledger = p.Bridge, p.EnergyLedger
    alice, far = a[2], a[30]
    fails(env, "bridge", "lock", "ENT", "1", far.address, who="alice", match="not listed")
    run(env, "propose", "set-peer", "999", a[31].address, who="voter1")
    run(env, "propose", "list-token", ledger.address, a[32].address, "on", who="voter1")
    out = run(env, "propose", "set-bridge-limit", ledger.address, "out", "100", "0.001", "10",
              "--dry-run").stdout  # fmt: skip
    assert "capacity=100, refill_per_second=0.001, max_per_transfer=10" in out
    run(env, "propose", "set-bridge-limit", ledger.address, "out", "100", "0.001", "10",
        who="voter1")  # fmt: skip
    assert bridge.limit(ledger, 0).capacity == 100 * 10**18

    out = run(env, "bridge", "lock", "ENT", "1", far.address, "--dry-run", who="alice").stdout
    assert f"Bridge.lock(token={ledger.address} (EnergyLedger), amount=1, dest_chain=999" in out
    fails(
        env,
        "bridge",
        "burn",
        "ENT",
        "1",
        far.address,
        who="alice",
        match="use powerhive bridge lock",
    )
    fails(env, "bridge", "lock", "ENT", "11", far.address, who="alice", match="bridge:")
    before = ledger.balanceOf(alice)
    out = run(env, "bridge", "lock", "ENT", "2.5", far.address, who="alice").stdout
    assert "event    TransferSent(" in out and "nonce=0" in out
    assert ledger.balanceOf(alice) == before - 25 * 10**17
    assert ledger.balanceOf(bridge) == 25 * 10**17
    listing = run(env, "bridge", "pending", "ENT").stdout
    assert f"nonce 0: 2.5 from {alice.address} to {far.address} on chain 999" in listing
    assert "1 pending, 2.5 in all" in listing
    assert "no pending transfers" in run(env, "bridge", "pending", "eEuro").stdout


def test_execute_close_expired_and_withdraw_a_ballot(env, chain):
    """A ballot left with a majority after a voter's removal is executed by `execute`; an
    expired one is closed by anyone; an opener withdraws its own."""
    p, a = env["protocol"], env["accounts"]
    council, eeuro = p.Council, p.EEuro
    v1, v2 = a[0], a[13]
    governed(p, [v1], council, "add_voter", v2)
    x = eeuro.set_banker.encode_input(a[6])
    y = council.set_ballot_lifetime.encode_input(7200)
    z = council.set_ballot_lifetime.encode_input(3600)
    council.vote(eeuro, x, sender=v1)  # 1 of 2: open (quota: two open ballots a voter)
    council.vote(council, y, sender=v1)
    council.vote(council, z, sender=v2)
    ids = {name: action_key(t.address, d)[:10] for name, t, d in
           (("x", eeuro, x), ("y", council, y), ("z", council, z))}  # fmt: skip
    fails(env, "execute", ids["x"], who="voter1", match="council: no majority")
    fails(env, "withdraw-ballot", ids["z"], who="voter1", match="council: not the opener")
    out = run(env, "withdraw-ballot", ids["z"], who="voter2").stdout
    assert "event    BallotWithdrawn(" in out
    governed(p, [v2, v1], council, "remove_voter", v2)  # x and y: now 1 YES of 1 voter
    fails(env, "close-expired", ids["y"], who="alice", match="council: ballot not expired")
    fails(env, "execute", ids["x"], who="alice", match="council: not a voter")
    out = run(env, "execute", ids["x"], who="voter1").stdout
    assert f"EEuro.set_banker(new_banker={a[6].address})" in out
    assert "event    BallotPassed(" in out and eeuro.banker() == a[6]
    chain.pending_timestamp = (
        council.ballot(bytes.fromhex(action_key(council.address, y)[2:])).expires_at + 1
    )
    chain.mine()
    out = run(env, "close-expired", ids["y"], who="alice").stdout
    assert "event    BallotExpired(" in out
    assert "no open ballots" in run(env, "ballots").stdout
    assert council.ballot_lifetime() == 7 * 86400


def test_roles_every_admin_role_is_the_councils(env, project, tmp_path):
    from powerhive.cli import ADMIN_ROLES

    p, a = env["protocol"], env["accounts"]
    out = run(env, "roles").stdout
    for name, getter in ADMIN_ROLES:
        assert f"{name}.{getter}" in out
    assert out.count(f"{p.Council.address} Council") == len(ADMIN_ROLES)
    assert "NOT" not in out and "every admin role is the Council's" in out
    assert f"note: the deployer {a[0].address} is still a voter" in out
    # The same file with a ledger its deployer still owns: refused, one line.
    rogue = a[3].deploy(project.EnergyLedger, a[3])
    data = json.loads((env["root"] / "deployments" / "31337.json").read_text())
    data["contracts"]["EnergyLedger"]["address"] = rogue.address
    (tmp_path / "31337.json").write_text(json.dumps(data))
    other = dict(env, base=[*env["base"][:2], "--deployments", str(tmp_path)])
    fails(other, "roles", match="not handed over to the Council: EnergyLedger.owner")


def test_scripts_encode_calls_like_ape(env):
    """`scripts._calls.encode_call` (the client library's encoder, used by every script's
    Council vote) gives Ape's own calldata, with accounts, contracts, strings and lists."""
    from scripts._calls import encode_call

    p, a = env["protocol"], env["accounts"]
    cases = [
        (p.EnergyLedger, "register_storage_unit", (a[8], a[10].address)),
        (p.Beekeeper, "add_meter", (a[40], a[20], "SN-1", "Acme")),
        (p.Bridge, "set_relayers", ([a[7].address, a[9]], 2)),
        (p.Beekeeper, "create_book", (p.EEuro, 1_000, 10**15, 10**16)),
    ]
    for target, method, args in cases:
        assert encode_call(target, method, *args) == bytes(
            getattr(target, method).encode_input(*args)
        ), method


def test_hive_created_grown_shrunk_and_frozen(env):
    """A hive owner's Beekeeper side through the CLI, its meters certified by `propose`: HVT
    paid, half burned and half staked, the stake back on drop and freeze."""
    from tests.beekeeper_helpers import HVT, split_cost

    p, a = env["protocol"], env["accounts"]
    keeper, hvt = p.Beekeeper, p.HiveToken
    owner, m1, m2 = a[20], a[41], a[42]
    for meter, serial in ((m1, "SN-41"), (m2, "SN-42")):
        run(env, "propose", "add-meter", meter.address, owner.address, serial, "Acme",
            who="voter1")  # fmt: skip
    hvt.transfer(owner, 2_000 * HVT, sender=a[5])
    before, staked = hvt.balanceOf(owner), keeper.total_staked()
    paid = keeper.hive_cost() + keeper.meter_cost()
    out = run(env, "hive", "create", "eEuro", m1.address, "--dry-run", who="owner").stdout
    assert f"cost     {paid // HVT:,} HVT" in out
    assert (
        f"Beekeeper.create_hive(stablecoin={p.EEuro.address} (EEuro), meters={m1.address})" in out
    )
    out = run(env, "hive", "create", "eEuro", m1.address, who="owner").stdout
    assert "event    HiveCreated(hive=2" in out and keeper.hive_info(2).owner == owner
    fails(env, "hive", "add-meter", "2", m2.address, who="worker", match="beekeeper:")
    run(env, "hive", "add-meter", "2", m2.address, who="owner")
    assert list(keeper.hive_meters(2)) == [m1.address, m2.address]
    run(env, "hive", "drop-meter", "2", m2.address, who="owner")
    fails(env, "hive", "drop-meter", "2", m1.address, who="owner", match="beekeeper: last meter")
    fails(env, "hive", "freeze", "2", who="worker", match="beekeeper:")
    # The meter's owner switches it off and on again; anyone else is refused.
    out = run(env, "hive", "meter-status", m2.address, "inactive", "--dry-run").stdout
    assert f"Beekeeper.change_meter_status(meter={m2.address}, status=inactive (2))" in out
    assert "nothing sent" in out and keeper.meter_info(m2).status == 1
    fails(env, "hive", "meter-status", m2.address, "broken", who="owner",
          match="status 'broken': not 'active' or 'inactive'")  # fmt: skip
    fails(env, "hive", "meter-status", m2.address, "inactive", who="worker",
          match="beekeeper: not meter owner")  # fmt: skip
    fails(env, "hive", "meter-status", "0x1234", "inactive", who="owner",
          match="not an Ethereum address")  # fmt: skip
    out = run(env, "hive", "meter-status", m2.address, "inactive", who="owner").stdout
    assert f"event    MeterStatusChanged(meter={m2.address}, status=2)" in out
    assert keeper.meter_info(m2).status == 2
    fails(env, "hive", "add-meter", "2", m2.address, who="owner", match="beekeeper: meter inactive")
    run(env, "hive", "meter-status", m2.address, "ACTIVE", who="owner")
    assert keeper.meter_info(m2).status == 1
    out = run(env, "hive", "freeze", "2", who="owner").stdout
    assert "event    HiveFrozen(" in out
    burned = split_cost(paid)[0] + split_cost(keeper.meter_cost())[0]
    assert hvt.balanceOf(owner) == before - burned and keeper.total_staked() == staked

    # The hive market's governed settings through `propose`.
    out = run(env, "propose", "set-hive-fee", "0.5%", a[6].address, "--dry-run").stdout
    assert f"HiveMarket.set_fee(fee_bps=0.5% (50 bps), fee_to={a[6].address})" in out
    fails(env, "propose", "set-hive-fee", "50", a[6].address, "--dry-run", match="percentage")
    run(env, "propose", "set-tariff-bounds", "0.01", "1.5", who="voter1")
    assert (p.HiveMarket.tariff_min(), p.HiveMarket.tariff_max()) == (100, 15_000)
