"""Stateful property test of the energy ledger under random produce / consume / session /
loss / vote steps (SPEC §2-§3), on titanoboa (see `tests/fuzz/boa_env.py`).

Each example deploys a fresh Council (three voters, added by passed votes) and a ledger it
governs, with two storage units voted in. Invariants after every step: ENT supply equals the
sum of balances; escrow held equals escrow owed by the sessions; network energy equals the sum
over units; `D = supply + escrow - KWH`. Per step: produce and in-reserve consumption move ENT
exactly as the reference model says and never grow `|D|` (only a loss report or
over-consumption may). 500 examples x 50 steps by default (`POWERHIVE_FUZZ_EXAMPLES`,
`POWERHIVE_FUZZ_STEPS`; `make fuzz` runs 10x).
"""

import boa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.fuzz import boa_env
from tests.ledger_helpers import WAD, WH

LIFETIME = 7200
ZERO = "0x" + "00" * 20
GRACE = 900


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


def pass_vote(council, target, data, voters):
    """Votes YES with `voters` in turn until the action has passed (SPEC §2)."""
    for voter in voters:
        council.vote(target, data, sender=voter)
        if any(type(e).__name__ == "BallotPassed" for e in council.get_logs()):
            return
    raise AssertionError("the vote did not pass")


def last_event(contract, name):
    found = [e for e in contract.get_logs() if type(e).__name__ == name]
    assert len(found) == 1, f"expected one {name}, got {contract.get_logs()}"
    return found[0]


M64 = 2**64 - 1
M128 = 2**128 - 1  # the packed words of EnergyLedger.vy: see its _unit and _session


class World:
    """A Council of three voters (added by passed votes) governing a ledger with two storage
    units voted in: built once per test, every example runs inside a boa anchor of it."""

    def __init__(self):
        deployer = boa.env.generate_address("deployer")
        self.voters = [deployer, *boa_env.accounts(2, "voter")]
        self.units = boa_env.accounts(2, "unit")
        self.owner = boa.env.generate_address("owner")
        self.people = boa_env.accounts(3, "person")
        self.holders = [*self.people, self.owner]
        with boa.env.prank(deployer):
            self.council = boa_env.quiet(boa_env.deployer("Council").deploy())
            self.ledger = boa_env.quiet(
                boa_env.deployer("EnergyLedger").deploy(self.council.address)
            )
        council, ledger = self.council, self.ledger
        pass_vote(council, council, council.add_voter.prepare_calldata(self.voters[1]), [deployer])
        pass_vote(council, council, council.add_voter.prepare_calldata(self.voters[2]), self.voters)
        for u in self.units:
            data = ledger.register_storage_unit.prepare_calldata(u, self.owner)
            pass_vote(council, ledger, data, self.voters)


class LedgerMachine(RuleBasedStateMachine):
    world: World
    depth: boa_env.Depth

    @initialize()
    def start(self):
        self.depth.example()
        self.__dict__.update(vars(self.world))
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.sessions = set()
        self.slots = boa_env.Slots(self.ledger)

    def teardown(self):
        if hasattr(self, "_anchor"):
            self._views_match_words()
            self._anchor.__exit__(None, None, None)

    def d_r(self):
        return self.ledger.imbalance(), self.ledger.cost()

    def next_seq(self, unit):
        return self.ledger.last_seq(unit) + 1

    @rule(u=st.integers(0, 1), p=st.integers(0, 2), wh=st.integers(1, 5_000))
    def produce(self, u, p, wh):
        self.depth.step()
        ledger = self.ledger
        unit, producer = self.units[u], self.people[p]
        d, r = self.d_r()
        m = ledger.params().max_mint_cost
        supply = ledger.totalSupply()
        ledger.energy_produced(producer, wh, self.next_seq(unit), sender=unit)
        minted, d_model = model_amount(wh, d, min(r, m), burn=False)
        assert ledger.totalSupply() - supply == minted
        assert ledger.imbalance() == d_model
        assert abs(d_model) <= abs(d)

    def now(self):
        return boa.env.evm.patch.timestamp

    def in_grace(self, s):
        """An ended (closed or expired) session still billing reports."""
        return s.open and s.expired and self.now() < s.grace_ends_at

    @rule(u=st.integers(0, 1), c=st.integers(0, 2), ent=st.integers(WH, 3 * 10**18))
    def start_session(self, u, c, ent):
        self.depth.step()
        ledger = self.ledger
        unit, consumer = self.units[u], self.people[c]
        old = ledger.session(consumer, unit)
        if old.open and not old.expired:
            with boa.reverts("ledger: session open"):
                ledger.start_session(unit, ent, sender=consumer)
            return
        if self.in_grace(old):
            with boa.reverts("ledger: session in grace"):
                ledger.start_session(unit, ent, sender=consumer)
            return
        # A settled-able session of the same pair is closed (refunded, released) first.
        refund, released = (old.escrow, old.reserved_wh) if old.open else (0, 0)
        d, r = self.d_r()
        rb = min(r, ledger.params().max_burn_cost)
        # SPEC section 3: ent / (1 + r_burn), whatever the sign of D (finding 4).
        reserve = ent * WAD // (WH * (WAD + rb))
        checks = [
            (reserve == 0, "ledger: amount below 1 Wh"),
            (
                reserve > ledger.unit_info(unit).available_wh + released,
                "ledger: not enough energy available",
            ),
            (ledger.balanceOf(consumer) + refund < ent, "erc20: burn amount exceeds balance"),
        ]
        for failed, reason in checks:
            if failed:
                with boa.reverts(reason):
                    ledger.start_session(unit, ent, sender=consumer)
                return
        ledger.start_session(unit, ent, sender=consumer)
        self.sessions.add((consumer, unit))
        assert ledger.session(consumer, unit).reserved_wh == reserve
        assert self.d_r() == (d, r)

    @rule(u=st.integers(0, 1), c=st.integers(0, 2), wh=st.integers(1, 3_000))
    def consume(self, u, c, wh):
        self.depth.step()
        ledger = self.ledger
        unit, consumer = self.units[u], self.people[c]
        s = ledger.session(consumer, unit)
        billed = s.open and (not s.expired or self.in_grace(s))
        d, r = self.d_r()
        rb = min(r, ledger.params().max_burn_cost)
        ledger.energy_consumed(consumer, wh, self.next_seq(unit), sender=unit)
        ev = last_event(ledger, "EnergyConsumed")
        in_wh = min(wh, s.reserved_wh) if billed else 0
        burned, d_model = model_amount(in_wh, d, rb, burn=True)
        if burned > s.escrow:
            # Inside the reserve only as far as the escrow pays at the rate in force.
            lo, hi = 0, in_wh
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if model_amount(mid, d, rb, burn=True)[0] <= s.escrow:
                    lo = mid
                else:
                    hi = mid - 1
            in_wh = lo
            burned, d_model = model_amount(in_wh, d, rb, burn=True)
        assert (ev.burned, ev.over_wh) == (burned, wh - in_wh)
        over = [e for e in ledger.get_logs() if type(e).__name__ == "OverConsumed"]
        assert [e.wh for e in over] == ([wh - in_wh] if wh > in_wh else [])
        if in_wh == wh:
            # Finding 4: energy consumed inside a reserve is paid at SPEC's rates and never
            # grows |D|.
            assert ledger.imbalance() == d_model
            assert abs(d_model) <= abs(d)

    @rule(u=st.integers(0, 1), loss=st.integers(-2_000, 2_000))
    def report_actual(self, u, loss):
        self.depth.step()
        unit = self.units[u]
        info = self.ledger.unit_info(unit)
        measured = max(0, info.available_wh + info.locked_wh - loss)
        self.ledger.report_actual_energy(measured, self.next_seq(unit), sender=unit)
        after = self.ledger.unit_info(unit)
        # Energy reserved by sessions stays booked until they consume or close.
        assert after.available_wh + after.locked_wh == max(measured, info.locked_wh)
        assert after.locked_wh == info.locked_wh

    @rule(seconds=st.sampled_from([1, 60, 600, GRACE + 1, LIFETIME + 1]))
    def time_passes(self, seconds):
        self.depth.step()
        boa.env.time_travel(seconds=seconds)

    @rule(c=st.integers(0, 2), u=st.integers(0, 1), other=st.booleans())
    def close_session(self, c, u, other):
        self.depth.step()
        ledger = self.ledger
        consumer, unit = self.people[c], self.units[u]
        caller = self.people[(c + 1) % 3] if other else consumer
        s = ledger.session(consumer, unit)
        balance = ledger.balanceOf(consumer)
        if not s.open:
            with boa.reverts("ledger: no session"):
                ledger.close_session(consumer, unit, sender=caller)
        elif not s.expired and other:
            with boa.reverts("ledger: session not expired"):
                ledger.close_session(consumer, unit, sender=caller)
        elif not s.expired:
            # Finding 5: ending early keeps billing reports for the grace; no refund yet.
            ledger.close_session(consumer, unit, sender=caller)
            after = ledger.session(consumer, unit)
            assert (after.open, after.expired, after.escrow) == (True, True, s.escrow)
            assert after.grace_ends_at == self.now() + ledger.session_grace()
        elif self.in_grace(s):
            with boa.reverts("ledger: session in grace"):
                ledger.close_session(consumer, unit, sender=caller)
        else:
            ledger.close_session(consumer, unit, sender=caller)
            assert not ledger.session(consumer, unit).open
            assert ledger.balanceOf(consumer) == balance + s.escrow
            return
        assert ledger.balanceOf(consumer) == balance

    @rule(src=st.integers(0, 2), dst=st.integers(0, 3), part=st.integers(1, 4))
    def transfer(self, src, dst, part):
        self.depth.step()
        bal = self.ledger.balanceOf(self.people[src])
        if bal:
            self.ledger.transfer(self.holders[dst], bal // part, sender=self.people[src])

    @rule(v=st.integers(0, 2), c=st.sampled_from([WAD // 20, WAD // 5, WAD // 2]))
    def vote_recovery_share(self, v, c):
        self.depth.step()
        p = self.ledger.params()
        data = self.ledger.set_parameters.prepare_calldata(
            p.max_mint_cost, p.max_burn_cost, c, p.storage_fee, p.session_lifetime
        )
        council, voter = self.council, self.voters[v]
        ballot = council.ballot(council.action_key(self.ledger, data))
        opens = ballot.target == ZERO or ballot.expired
        # An expired ballot of the same voter is dropped first, giving its quota back.
        freed = ballot.target != ZERO and ballot.expired and ballot.opener == voter
        if opens and council.ballots_opened(voter) - freed >= council.BALLOTS_PER_VOTER():
            with boa.reverts("council: ballot quota used"):
                council.vote(self.ledger, data, sender=voter)
            return
        council.vote(self.ledger, data, sender=voter)

    @invariant()
    def conserved(self):
        # Storage words (boa_env.Slots: no EVM run) for the sums and the totals: a view call
        # costs more than the step. D comes from the `imbalance` view as well, every step;
        # teardown checks `totalSupply`, `total_escrow`, `network_energy_wh` and the
        # per-record views against these words at the end of every example.
        ledger, slots = self.ledger, self.slots
        supply = slots.word("erc20.totalSupply")
        assert supply == sum(slots.word("erc20.balanceOf", h) for h in self.holders)
        owed = sum(slots.word("_session", c, u) & M128 for c, u in self.sessions)
        book = 0
        for u in self.units:
            word = slots.word("_unit", u)
            book += ((word >> 64) & M64) + ((word >> 128) & M64)
        state = slots.word("_state")  # KWH in bits 0-63, D (int128) in bits 128-255
        assert state & M64 == book, "KWH = sum over units"
        d = _signed128(state >> 128)
        assert d == supply + owed - book * WH, "D = supply + escrow - KWH"
        assert ledger.imbalance() == d

    def _views_match_words(self):
        ledger, slots = self.ledger, self.slots
        supply = slots.word("erc20.totalSupply")
        assert ledger.totalSupply() == supply
        state = slots.word("_state")
        assert ledger.network_energy_wh() == state & M64
        assert ledger.imbalance() == _signed128(state >> 128)
        owed = sum(slots.word("_session", c, u) & M128 for c, u in self.sessions)
        assert ledger.total_escrow() == owed
        for h in self.holders:
            assert ledger.balanceOf(h) == slots.word("erc20.balanceOf", h)
        for c, u in self.sessions:
            assert ledger.session(c, u).escrow == slots.word("_session", c, u) & M128
        for u in self.units:
            info, word = ledger.unit_info(u), slots.word("_unit", u)
            assert info.available_wh == (word >> 64) & M64
            assert info.locked_wh == (word >> 128) & M64


def _signed128(word: int) -> int:
    return word - 2**128 if word >= 2**127 else word


def test_ledger_state_machine(record_property):
    LedgerMachine.world = World()
    LedgerMachine.depth = boa_env.Depth()
    LedgerMachine.TestCase.settings = boa_env.settings_for()
    LedgerMachine.TestCase().runTest()
    LedgerMachine.depth.check_and_record(record_property, "ledger", boa_env.EXAMPLES)
