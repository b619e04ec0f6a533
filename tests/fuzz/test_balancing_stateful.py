"""Stateful property test of the balancing market (SPEC §9, issue 14 part 1) on titanoboa (see
`boa_env.py`), against a plain-Python model (tests/balancing_model.py prices by summing the
staircase block by block, not by the contract's closed form).

Four members (each may hold both roles; governance takes roles away and gives them back)
commit to produce and consume in the next few 15-minute slots, through an active storage
unit, a second unit the Council may remove, or an address that is no unit; they cancel, the
units certify (under, exactly and over the commitment), anyone expires; members deposit and
withdraw, governance funds and withdraws seed and votes new parameter versions (a slot keeps
its first commitment's); anyone opens slots ahead; time jumps by amounts around slot starts,
slot ends and the certification window's end. The model predicts every amount, every revert
reason and every event's numbers. After every step:

- the market's eEuro == the members' free balances + every slot's escrow + every slot's
  reserved payouts + the free seed, exactly, and each of those is the model's;
- escrow and reserve are the sums of the open commitments' amounts (a payout is reserved
  out of the seed when committed, so the seed covers every payout owed);
- the slots the step touched (every slot, every 8th step) have the model's totals and price.

At the end of every example time runs past every window, everything is expired, every
balance and the seed are withdrawn, and the market holds nothing at all.

Depth: a tenth of the shared examples (50 x 50 in `make test`, ~40 s of one core).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass

import boa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests import balancing_model as model
from tests.fuzz import boa_env

EUR = 10**6
L = 900
BIG = 2**256 - 1
MEMBERS = 4
START_EUR = 10_000 * EUR
PARAMS = model.Params(horizon=4, window=1_800)
GOV_ONLY = "balancing: only by Council vote"
PRODUCE, CONSUME = 0, 1


@dataclass
class Slot:
    prod: int = 0
    cons: int = 0
    version: int = 0  # 0: no commitment yet (opened or not)
    escrow: int = 0
    reserved: int = 0
    opened: bool = False


@dataclass
class Held:
    wh: int
    amount: int
    unit: str


class World:
    def __init__(self):
        self.gov = boa.env.generate_address("bal-fuzz-council")
        self.banker, self.owner, self.unit, self.unit2, self.fake = boa_env.accounts(5, "bal-adm")
        self.members = boa_env.accounts(MEMBERS, "bal-member")
        boa.env.evm.patch.timestamp = 1_800_000_000 - 1_800_000_000 % L
        with boa.env.prank(self.gov):
            self.ledger = boa_env.quiet(boa_env.deployer("EnergyLedger").deploy(self.gov))
            self.eeuro = boa_env.quiet(boa_env.deployer("EEuro").deploy(self.gov))
            self.market = boa_env.quiet(
                boa_env.deployer("BalancingMarket").deploy(
                    self.eeuro.address, self.ledger.address, self.gov, L
                )
            )
            self.ledger.register_storage_unit(self.unit, self.owner)
            self.ledger.register_storage_unit(self.unit2, self.owner)
            self.eeuro.set_banker(self.banker)
            self.market.set_parameters(*PARAMS.args())
            self.eeuro.mint(self.gov, START_EUR, sender=self.banker)
            self.eeuro.approve(self.market.address, BIG)
        for m in self.members:
            self.market.set_member(m, 3, sender=self.gov)
            self.eeuro.mint(m, START_EUR, sender=self.banker)
            self.eeuro.approve(self.market.address, BIG, sender=m)


class BalancingMachine(RuleBasedStateMachine):
    world: World
    depth: boa_env.Depth
    stats: Counter

    @initialize(
        seed=st.sampled_from([0, 2 * EUR, 50 * EUR, 50 * EUR]), offset=st.integers(0, L - 1)
    )
    def start(self, seed, offset):
        self.depth.example()
        w = self.world
        self.m, self.eeuro, self.members, self.gov = w.market, w.eeuro, w.members, w.gov
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        boa.env.time_travel(seconds=offset)
        self.params = {1: PARAMS}
        self.version = 1
        self.seed = 0
        self.balances = dict.fromkeys(self.members, 0)
        self.roles = dict.fromkeys(self.members, 3)
        self.slots: dict[int, Slot] = {}
        self.held: dict[tuple[str, int, int], Held] = {}
        self.active = {w.unit: True, w.unit2: True, w.fake: False}
        self.units = [w.unit, w.unit2, w.fake]
        self.gov_eur = START_EUR
        self.dirty: set[int] = set()
        self.dirty_members: set[str] = set()
        self.checks = 0
        if seed:
            self.m.fund(seed, sender=self.gov)
            self.seed = seed
            self.gov_eur -= seed
        for member in self.members:
            self._deposit(member, 20 * EUR)

    def teardown(self):
        if not hasattr(self, "_anchor"):
            return
        try:
            if isinstance(sys.exc_info()[1], Exception):
                return
            for s in self.slots:
                self._assert_slot(s)
            # Past every window: expire everything, withdraw everything; nothing is left.
            boa.env.time_travel(seconds=20 * L + 2 * 86_400)
            for who, slot, side in list(self.held):
                self._expire(who, slot, side, self.members[0])
            for who in self.members:
                if self.balances[who]:
                    self.m.withdraw(self.balances[who], sender=who)
                    self.balances[who] = 0
            if self.seed:
                self.m.withdraw_seed(self.gov, self.seed, sender=self.gov)
                self.seed = 0
            assert self.eeuro.balanceOf(self.m.address) == 0
            for s in self.slots:
                info = self.m.slot_info(s)
                assert (info.escrow, info.reserved) == (0, 0)
        finally:
            self._anchor.__exit__(None, None, None)

    # -- helpers ----------------------------------------------------------------------------

    def now(self) -> int:
        return boa.env.evm.patch.timestamp

    def now_slot(self) -> int:
        return self.now() // L

    def slot(self, s: int) -> Slot:
        return self.slots.setdefault(s, Slot())

    def params_of(self, s: int) -> model.Params:
        v = self.slot(s).version or self.version
        return self.params[v]

    def _deposit(self, who, amount):
        self.m.deposit(amount, sender=who)
        self.balances[who] += amount
        self.dirty_members.add(who)

    def _expire(self, who, slot, side, caller):
        h = self.held.pop((who, slot, side))
        self.m.expire(who, slot, side, sender=caller)
        credited, to_seed = (0, h.amount) if side == PRODUCE else (h.amount, 0)
        ev = self.m.get_logs()[0]
        assert tuple(ev)[1:] == (who, slot, caller, side, h.wh, credited, to_seed)
        self._settled(who, slot, side, h, credited, to_seed)
        self.stats["expired"] += 1

    def _settled(self, who, slot, side, h, credited, to_seed):
        sl = self.slot(slot)
        if side == PRODUCE:
            sl.reserved -= h.amount
        else:
            sl.escrow -= h.amount
        self.seed += to_seed
        self.balances[who] += credited
        self.dirty.add(slot)
        self.dirty_members.add(who)

    def _key(self, data, m, offset, side, before_start=False, certifiable=False):
        """An open commitment (picked from the model; with `before_start`, one whose slot has
        not opened, with `certifiable` one in its certification window, if any) or, one time
        in four, any key."""
        keys = sorted(self.held)
        if before_start:
            keys = [k for k in keys if k[1] * L > self.now()] or keys
        if certifiable:
            keys = [k for k in keys if self._certifiable(k[1])] or keys
        if keys and data.draw(st.integers(0, 3)):
            return keys[data.draw(st.integers(0, len(keys) - 1))]
        return self.members[m], self.now_slot() + offset, side

    def _certifiable(self, s: int) -> bool:
        ends = (s + 1) * L
        return ends <= self.now() < ends + self.params_of(s).window

    # -- rules ------------------------------------------------------------------------------

    @rule(
        m=st.integers(0, MEMBERS - 1),
        offset=st.sampled_from([-1, 0, 1, 1, 1, 2, 2, 3, 4, 5]),
        side=st.sampled_from([PRODUCE, CONSUME]),
        wh=st.one_of(st.integers(1, 3_000), st.sampled_from([1, 99, 100, 101, 40_000])),
        unit=st.sampled_from([0, 0, 0, 1, 2]),
        slip=st.sampled_from([None, None, None, -1, 0, 1]),
    )
    def commit(self, m, offset, side, wh, unit, slip):
        self._commit(m, offset, side, wh, unit, slip)

    @rule(
        m=st.integers(0, MEMBERS - 1),
        offset=st.sampled_from([1, 2]),
        side=st.sampled_from([PRODUCE, CONSUME]),
        wh=st.integers(1, 2_000),
    )
    def commit_next(self, m, offset, side, wh):
        """Commitments are what the other rules work on: a second, plain commit rule."""
        self._commit(m, offset, side, wh, 0, None)

    def _commit(self, m, offset, side, wh, unit, slip):
        self.depth.step()
        who, unit_addr = self.members[m], self.units[unit]
        s = self.now_slot() + offset
        p = self.params_of(s)
        sl = self.slots.get(s, Slot())
        imb = sl.prod - sl.cons
        if side == PRODUCE:
            amount = model.produce_pay(p, imb, wh)
        else:
            amount = model.consume_cost(p, imb, wh)
        limit = (0 if side == PRODUCE else BIG) if slip is None else amount + slip
        held = self.held.get((who, s, side))
        reason = None
        if not self.roles[who] & (1 << side):
            reason = "balancing: not whitelisted"
        elif s <= self.now_slot():
            reason = "balancing: slot not in the future"
        elif s - self.now_slot() > p.horizon:
            reason = "balancing: slot beyond horizon"
        elif side == PRODUCE and amount < limit:
            reason = "balancing: payout below limit"
        elif side == PRODUCE and amount > self.seed:
            reason = "balancing: seed too low"
        elif side == CONSUME and amount > limit:
            reason = "balancing: cost above limit"
        elif side == CONSUME and amount > self.balances[who]:
            reason = "balancing: balance too low"
        elif held is not None and held.unit != unit_addr:
            reason = "balancing: other unit"
        if reason:
            with boa.reverts(reason):
                self.m.commit(s, side, wh, unit_addr, limit, sender=who)
            self.stats[f"commit: {reason[11:]}"] += 1
            return
        assert self.m.quote(s, side, wh) == amount
        assert self.m.commit(s, side, wh, unit_addr, limit, sender=who) == amount
        sl = self.slot(s)
        sl.version = sl.version or self.version
        if side == PRODUCE:
            sl.prod += wh
            sl.reserved += amount
            self.seed -= amount
        else:
            sl.cons += wh
            sl.escrow += amount
            self.balances[who] -= amount
            self.dirty_members.add(who)
        ev = self.m.get_logs()[0]
        assert tuple(ev)[1:] == (who, s, unit_addr, side, wh, amount, sl.prod, sl.cons)
        if held is None:
            self.held[(who, s, side)] = Held(wh, amount, unit_addr)
        else:
            held.wh += wh
            held.amount += amount
        self.dirty.add(s)
        self.stats["committed"] += 1

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        m=st.integers(0, MEMBERS - 1),
        offset=st.integers(0, 3),
        side=st.sampled_from([PRODUCE, CONSUME]),
    )
    def cancel(self, data, m, offset, side):
        self.depth.step()
        who, s, side = self._key(data, m, offset, side, before_start=True)
        h = self.held.get((who, s, side))
        reason = None
        unwind = 0
        if h is None:
            reason = "balancing: no commitment"
        elif self.now() >= s * L:
            reason = "balancing: slot opened"
        else:
            sl, p = self.slot(s), self.params_of(s)
            imb = sl.prod - sl.cons
            if side == PRODUCE:
                unwind = model.integral(p, imb - h.wh, imb)
                if unwind > h.amount and self.balances[who] < unwind - h.amount:
                    reason = "balancing: balance too low"
            else:
                unwind = model.integral(p, imb, imb + h.wh)
                if unwind > h.amount and self.seed < unwind - h.amount:
                    reason = "balancing: seed too low"
        if reason:
            with boa.reverts(reason):
                self.m.cancel(s, side, sender=who)
            self.stats[f"cancel: {reason[11:]}"] += 1
            return
        assert self.m.cancel(s, side, sender=who) == unwind
        assert tuple(self.m.get_logs()[0])[1:] == (who, s, side, h.wh, h.amount, unwind)
        del self.held[(who, s, side)]
        sl = self.slot(s)
        if side == PRODUCE:
            sl.prod -= h.wh
            sl.reserved -= h.amount
            self.seed += unwind
            self.balances[who] += h.amount - unwind
        else:
            sl.cons -= h.wh
            sl.escrow -= h.amount
            self.seed += h.amount - unwind
            self.balances[who] += unwind
        self.dirty.add(s)
        self.dirty_members.add(who)
        self.stats["cancelled"] += 1

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        m=st.integers(0, MEMBERS - 1),
        offset=st.integers(-3, 0),
        side=st.sampled_from([PRODUCE, CONSUME]),
        share=st.sampled_from([0, 1, 2, 3, 4]),
        by=st.sampled_from([None, None, None, 0, 1, 2]),
    )
    def certify(self, data, m, offset, side, share, by):
        self.depth.step()
        who, s, side = self._key(data, m, offset, side, certifiable=True)
        h = self.held.get((who, s, side))
        committed = h.wh if h else 100
        # Nothing, a third, all, one Wh more, twice the commitment.
        delivered = [0, committed // 3, committed, committed + 1, 2 * committed][share]
        sender = (h.unit if h else self.units[0]) if by is None else self.units[by]
        ends = (s + 1) * L
        reason = None
        if h is None:
            reason = "balancing: no commitment"
        elif sender != h.unit:
            reason = "balancing: not the commitment's unit"
        elif self.now() < ends:
            reason = "balancing: slot not over"
        elif self.now() >= ends + self.params_of(s).window:
            reason = "balancing: certification closed"
        elif not self.active[sender]:
            reason = "balancing: unit not active"
        if reason:
            with boa.reverts(reason):
                self.m.certify(who, s, side, delivered, sender=sender)
            self.stats[f"certify: {reason[11:]}"] += 1
            return
        got = min(delivered, h.wh)
        if side == PRODUCE:
            credited = h.amount * got // h.wh
            to_seed = h.amount - credited
        else:
            to_seed = -(-h.amount * got // h.wh)
            credited = h.amount - to_seed
        self.m.certify(who, s, side, delivered, sender=sender)
        ev = self.m.get_logs()[0]
        assert tuple(ev)[1:] == (who, s, sender, side, h.wh, delivered, credited, to_seed)
        del self.held[(who, s, side)]
        self._settled(who, s, side, h, credited, to_seed)
        self.stats["certified"] += 1

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        m=st.integers(0, MEMBERS - 1),
        offset=st.integers(-4, 0),
        side=st.sampled_from([PRODUCE, CONSUME]),
    )
    def expire(self, data, m, offset, side):
        self.depth.step()
        who, s, side = self._key(data, m, offset, side)
        h = self.held.get((who, s, side))
        caller = self.members[(m + 1) % MEMBERS]
        if h is None:
            with boa.reverts("balancing: no commitment"):
                self.m.expire(who, s, side, sender=caller)
            return
        if self.now() < (s + 1) * L + self.params_of(s).window:
            with boa.reverts("balancing: certification open"):
                self.m.expire(who, s, side, sender=caller)
            self.stats["expire: certification open"] += 1
            return
        self._expire(who, s, side, caller)

    @rule(m=st.integers(0, MEMBERS - 1), deposit=st.booleans(), share=st.integers(0, 3))
    def money(self, m, deposit, share):
        self.depth.step()
        who = self.members[m]
        if deposit:
            amount = [0, 1, 3 * EUR, 10 * EUR][share]
            if amount == 0:
                with boa.reverts("balancing: zero amount"):
                    self.m.deposit(0, sender=who)
                return
            self._deposit(who, amount)
            return
        free = self.balances[who]
        amount = [free // 2, free, free + 1, 1][share]
        if amount == 0 or amount > free:
            reason = "balancing: zero amount" if amount == 0 else "balancing: balance too low"
            with boa.reverts(reason):
                self.m.withdraw(amount, sender=who)
            return
        self.m.withdraw(amount, sender=who)
        self.balances[who] -= amount
        self.dirty_members.add(who)

    def _seed_moves(self, fund, amount, by):
        self.depth.step()
        if fund:
            amount = 20 * EUR if isinstance(amount, str) else amount
            self.m.fund(amount, sender=self.gov)
            self.seed += amount
            return
        # Withdraw a fixed amount, the whole free seed, or one unit more than it.
        amount = {"all": self.seed, "over": self.seed + 1}.get(amount, amount)
        if by:
            with boa.reverts(GOV_ONLY):
                self.m.withdraw_seed(self.members[0], max(amount, 1), sender=self.members[0])
            return
        if amount == 0:
            with boa.reverts("balancing: zero amount"):
                self.m.withdraw_seed(self.gov, 0, sender=self.gov)
            return
        if amount > self.seed:
            with boa.reverts("balancing: seed too low"):
                self.m.withdraw_seed(self.gov, amount, sender=self.gov)
            return
        self.m.withdraw_seed(self.gov, amount, sender=self.gov)
        self.seed -= amount

    def _set_member(self, m, roles, by):
        self.depth.step()
        who = self.members[m]
        if by:
            with boa.reverts(GOV_ONLY):
                self.m.set_member(who, 3, sender=who)
            return
        self.m.set_member(who, roles, sender=self.gov)
        self.roles[who] = roles

    def _set_parameters(self, base, tick, step, horizon, window, by):
        self.depth.step()
        p = model.Params(base * 1000, 50_000, 600_000, tick * 1000, step, horizon, window)
        if by:
            with boa.reverts(GOV_ONLY):
                self.m.set_parameters(*p.args(), sender=self.members[1])
            return
        self.m.set_parameters(*p.args(), sender=self.gov)
        self.version += 1
        self.params[self.version] = p
        self.stats["parameters set"] += 1

    def _open_slots(self, offset, count):
        self.depth.step()
        first = self.now_slot() + offset
        if first <= self.now_slot():
            with boa.reverts("balancing: slot not in the future"):
                self.m.open_slots(first, count)
            return
        if first + count - 1 - self.now_slot() > self.params[self.version].horizon:
            with boa.reverts("balancing: slot beyond horizon"):
                self.m.open_slots(first, count)
            return
        fresh = [
            s
            for s in range(first, first + count)
            if not self.slots.get(s, Slot()).opened and not self.slots.get(s, Slot()).version
        ]
        assert self.m.open_slots(first, count) == len(fresh)
        for s in fresh:
            self.slot(s).opened = True
        self.dirty.update(range(first, first + count))

    def _remove_unit2(self):
        self.depth.step()
        w = self.world
        if self.active[w.unit2]:
            w.ledger.remove_storage_unit(w.unit2, sender=w.gov)
            self.active[w.unit2] = False

    @rule(kind=st.sampled_from(["second", "before start", "at start", "window", "slot"]))
    def warp(self, kind):
        self.depth.step()
        now = self.now()
        nxt = (now // L + 1) * L
        target = {
            "second": now + 1,
            "before start": nxt - 1 if nxt - 1 > now else nxt + L - 1,
            "at start": nxt,
            "window": nxt + self.params[self.version].window,
            "slot": now + L,
        }[kind]
        boa.env.time_travel(seconds=target - now)

    @rule(data=st.data(), kind=st.sampled_from(["seed", "member", "params", "open", "unit"]))
    def govern(self, data, kind):
        """Governance and keeper moves, one rule so that commitments stay the common step."""
        d = data.draw
        if kind == "seed":
            amount = d(st.sampled_from([1, EUR, 5 * EUR, "all", "over"]))
            self._seed_moves(d(st.booleans()), amount, d(st.booleans()))
        elif kind == "member":
            roles = d(st.sampled_from([3, 3, 0, 1, 2]))
            self._set_member(d(st.integers(0, MEMBERS - 1)), roles, d(st.booleans()))
        elif kind == "params":
            self._set_parameters(
                d(st.integers(100, 400)),
                d(st.integers(1, 30)),
                d(st.sampled_from([1, 7, 100, 1_000])),
                d(st.integers(1, 5)),
                d(st.sampled_from([900, 1_800])),
                d(st.booleans()),
            )
        elif kind == "open":
            self._open_slots(d(st.integers(0, 6)), d(st.integers(1, 4)))
        else:
            self._remove_unit2()

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        # Mostly to a slot's end: certification is the step that needs time to pass.
        edge=st.sampled_from(
            ["start-1", "start", "end-1", "end", "end", "end", "close-1", "close"]
        ),
    )
    def warp_to_edge(self, data, edge):
        """Jump to a time edge of an open commitment's slot: just before and at its start,
        its end, and the end of its certification window (only forward in time)."""
        self.depth.step()
        if not self.held:
            return
        keys = sorted(self.held)
        s = keys[data.draw(st.integers(0, len(keys) - 1))][1]
        close = (s + 1) * L + self.params_of(s).window
        target = {
            "start-1": s * L - 1,
            "start": s * L,
            "end-1": (s + 1) * L - 1,
            "end": (s + 1) * L,
            "close-1": close - 1,
            "close": close,
        }[edge]
        if target > self.now():
            boa.env.time_travel(seconds=target - self.now())

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def conserved(self):
        if not hasattr(self, "_anchor"):
            return
        m = self.m
        escrow = sum(sl.escrow for sl in self.slots.values())
        reserved = sum(sl.reserved for sl in self.slots.values())
        free = sum(self.balances.values())
        held = self.eeuro.balanceOf(m.address)
        assert held == free + escrow + reserved + self.seed
        assert m.seed() == self.seed
        assert escrow == sum(h.amount for (_, _, side), h in self.held.items() if side == CONSUME)
        assert reserved == sum(h.amount for (_, _, side), h in self.held.items() if side == PRODUCE)
        self.checks += 1
        every = self.checks % 8 == 0
        for who in self.members if every else self.dirty_members:
            assert m.balance_of(who) == self.balances[who]
        self.dirty_members.clear()
        for s in self.slots if every else self.dirty:
            self._assert_slot(s)
        self.dirty.clear()

    def _assert_slot(self, s):
        sl = self.slot(s)
        info = self.m.slot_info(s)
        v = sl.version or self.version
        p = self.params[v]
        assert (info.production_wh, info.consumption_wh) == (sl.prod, sl.cons)
        assert (info.escrow, info.reserved, info.version) == (sl.escrow, sl.reserved, v)
        assert info.price == model.price_wh(p, sl.prod - sl.cons) * 1000


EXAMPLES = max(1, boa_env.EXAMPLES // 10)


def test_balancing_state_machine(record_property):
    BalancingMachine.world = World()
    BalancingMachine.depth = boa_env.Depth()
    BalancingMachine.stats = Counter()
    BalancingMachine.TestCase.settings = boa_env.settings_for(examples=EXAMPLES)
    BalancingMachine.TestCase().runTest()
    BalancingMachine.depth.check_and_record(record_property, "balancing", EXAMPLES)
    stats = BalancingMachine.stats
    record_property(
        "fuzz_depth",
        "balancing outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())),
    )
