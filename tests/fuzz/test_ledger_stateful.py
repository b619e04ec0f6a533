"""Stateful property test of the energy ledger under random produce / consume / session /
loss / vote steps (SPEC §2-§3).

Invariants after every step: ENT supply equals the sum of balances; escrow held equals escrow
owed by the sessions; network energy equals the sum over units; `D = supply + escrow - KWH`.
Per step: produce and in-reserve consumption move ENT exactly as the reference model says and
never grow `|D|` (only a loss report or over-consumption may). 50 examples x 30 steps by
default; POWERHIVE_FUZZ_EXAMPLES runs more.
"""

import os

import ape
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from scripts._protocol import pass_vote
from tests.ledger_helpers import WAD, WH

EXAMPLES = int(os.environ.get("POWERHIVE_FUZZ_EXAMPLES", "50"))


def model_amount(wh, d, r, burn):
    """Reference for SPEC §3: returns (ENT moved, D after) for minting or burning `wh`."""
    amount = wh * WH
    if r == 0 or d == 0:
        return amount, d
    cost = amount * r
    up = -(-cost // WAD)
    down = cost // WAD
    if d > 0:
        adj = min(up, d)
        return (amount + adj if burn else amount - adj), d - adj
    adj = min(down, -d)
    return (amount - adj if burn else amount + adj), d + adj


@pytest.fixture(scope="module")
def world(project, accounts, chain):
    deployer = accounts[0]
    voters = [deployer, accounts[13], accounts[14]]
    council = deployer.deploy(project.Council)
    ledger = deployer.deploy(project.EnergyLedger, council)
    units = [accounts[8], accounts[9]]
    owner = accounts[10]
    people = [accounts[11], accounts[12], accounts[15]]

    def governed(target, data):
        pass_vote(council, target, data, voters)

    governed(council, council.add_voter.encode_input(voters[1]))
    governed(council, council.add_voter.encode_input(voters[2]))
    for u in units:
        governed(ledger, ledger.register_storage_unit.encode_input(u, owner))
    return dict(
        council=council,
        ledger=ledger,
        units=units,
        owner=owner,
        people=people,
        voters=voters,
        chain=chain,
    )


@pytest.mark.timeout(3600)
def test_ledger_state_machine(world):
    ledger, units, people = world["ledger"], world["units"], world["people"]
    council, voters, chain = world["council"], world["voters"], world["chain"]
    holders = people + [world["owner"]]
    # Anvil drops a snapshot when reverting to it: take a fresh one after every restore.
    snap = [chain.snapshot()]

    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def reset(self):
            chain.restore(snap[0])
            snap[0] = chain.snapshot()
            self.sessions = set()
            self.cost_locked_growth = True

        def d_r(self):
            return ledger.imbalance(), ledger.cost()

        def next_seq(self, unit):
            return ledger.last_seq(unit) + 1

        @rule(u=st.integers(0, 1), p=st.integers(0, 2), wh=st.integers(1, 5_000))
        def produce(self, u, p, wh):
            unit, producer = units[u], people[p]
            d, r = self.d_r()
            m = ledger.params().max_mint_cost
            supply = ledger.totalSupply()
            ledger.energy_produced(producer, wh, self.next_seq(unit), sender=unit)
            minted, d_model = model_amount(wh, d, min(r, m), burn=False)
            assert ledger.totalSupply() - supply == minted
            assert ledger.imbalance() == d_model
            assert abs(d_model) <= abs(d)

        @rule(u=st.integers(0, 1), c=st.integers(0, 2), ent=st.integers(WH, 3 * 10**18))
        def start_session(self, u, c, ent):
            unit, consumer = units[u], people[c]
            if ledger.session(consumer, unit).open:
                return
            if ledger.balanceOf(consumer) < ent:
                return
            d, r = self.d_r()
            b = ledger.params().max_burn_cost
            rb = min(r, b)
            if r == 0 or d == 0:
                reserve = ent // WH
            elif d > 0:
                reserve = ent * WAD // (WH * (WAD + rb))
            else:
                reserve = ent * WAD // (WH * (WAD - rb))
            if reserve == 0 or reserve > ledger.unit_info(unit).available_wh:
                with ape.reverts():
                    ledger.start_session(unit, ent, sender=consumer)
                return
            ledger.start_session(unit, ent, sender=consumer)
            self.sessions.add((consumer, unit))
            assert ledger.session(consumer, unit).reserved_wh == reserve
            assert self.d_r() == (d, r)

        @rule(u=st.integers(0, 1), c=st.integers(0, 2), wh=st.integers(1, 3_000))
        def consume(self, u, c, wh):
            unit, consumer = units[u], people[c]
            s = ledger.session(consumer, unit)
            d, r = self.d_r()
            tx = ledger.energy_consumed(consumer, wh, self.next_seq(unit), sender=unit)
            ev = [e for e in tx.events if e.event_name == "EnergyConsumed"][0]
            if s.open and not s.expired and wh <= s.reserved_wh:
                b = ledger.params().max_burn_cost
                burned, d_model = model_amount(wh, d, min(r, b), burn=True)
                burned = min(burned, s.escrow)
                assert ev.burned == burned
                if burned == model_amount(wh, d, min(r, b), burn=True)[0]:
                    assert ledger.imbalance() == d_model
                    assert abs(d_model) <= abs(d)
            else:
                assert ev.over_wh == wh - (s.reserved_wh if s.open and not s.expired else 0)

        @rule(u=st.integers(0, 1), loss=st.integers(-2_000, 2_000))
        def report_actual(self, u, loss):
            unit = units[u]
            info = ledger.unit_info(unit)
            measured = max(0, info.available_wh + info.locked_wh - loss)
            ledger.report_actual_energy(measured, self.next_seq(unit), sender=unit)

        @rule(c=st.integers(0, 2), u=st.integers(0, 1), wait=st.booleans())
        def close_session(self, c, u, wait):
            consumer, unit = people[c], units[u]
            if not ledger.session(consumer, unit).open:
                return
            if wait:
                chain.pending_timestamp += 7201
            ledger.close_session(consumer, unit, sender=consumer)

        @rule(src=st.integers(0, 2), dst=st.integers(0, 3), part=st.integers(1, 4))
        def transfer(self, src, dst, part):
            bal = ledger.balanceOf(people[src])
            if bal:
                ledger.transfer(holders[dst], bal // part, sender=people[src])

        @rule(v=st.integers(0, 2), c=st.sampled_from([WAD // 20, WAD // 5, WAD // 2]))
        def vote_recovery_share(self, v, c):
            p = ledger.params()
            data = ledger.set_parameters.encode_input(
                p.max_mint_cost, p.max_burn_cost, c, p.storage_fee, p.session_lifetime
            )
            council.vote(ledger, data, sender=voters[v])

        @invariant()
        def conserved(self):
            supply = ledger.totalSupply()
            assert supply == sum(ledger.balanceOf(h) for h in holders)
            owed = sum(ledger.session(c, u).escrow for c, u in self.sessions)
            assert ledger.total_escrow() == owed
            book = 0
            for u in units:
                info = ledger.unit_info(u)
                book += info.available_wh + info.locked_wh
            assert ledger.network_energy_wh() == book
            assert ledger.imbalance() == supply + owed - book * WH

    LedgerMachine.TestCase.settings = settings(
        max_examples=EXAMPLES, stateful_step_count=30, deadline=None
    )
    LedgerMachine.TestCase().runTest()
    chain.restore(snap[0])
