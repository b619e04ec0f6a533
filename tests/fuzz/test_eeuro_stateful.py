"""Stateful property test of eEuro and its banker (SPEC §4) on titanoboa (`boa_env.py`).

Governance (an address of the test's, not the deployer) sets, changes and revokes the banker
and may hand governance over; the banker mints to holders; holders transfer, approve and
`transferFrom` one another (also to the zero address and to the token's own address, which
must revert); holders lock eEuro for redemption; the
banker burns or releases locked funds in part, in full or beyond what is locked (which must
revert); strangers, holders, governance and former bankers try the banker's and governance's
functions. A plain-Python model predicts every call: its exact revert reason, or its events
and its effect on balances, allowances, locks, supply, banker and owner.

After every step that changed anything: `totalSupply`, `total_locked` and the token's own
balance are the model's, with `totalSupply == sum of all balances` (the token's own included)
and `total_locked == sum over holders of locked(holder)`; the balances, locks and allowances
the step touched are the model's. At the end of every example every balance and lock of
every account the test uses, and every allowance the example set, is compared, and the
balances are summed from the contract's own views.

eEuro sent to the token's own address would be stuck (no holder's lock, so neither `burn` nor
`release` reaches it) and break `balanceOf(eEuro) == total_locked`: `transfer` and
`transferFrom` refuse it (issue 9, finding 9), and the invariant is exact.

Every example starts from the same freshly deployed token, restored with a boa anchor:
titanoboa 0.2.8 recomputes a deployment source map on every `.deploy()` (~40 ms here).
"""

from __future__ import annotations

import boa
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.fuzz import boa_env

ZERO = "0x" + "00" * 20
MAX_UINT = 2**256 - 1
EEURO = 10**6

# Account indexes: 0, 1 governance (initial, handover); 2, 3 bankers; 4..6 holders;
# 7 a stranger. -1 is the token's own address, -2 the zero address.
GOVERNANCE, HANDOVER, BANKER, BANKER2 = 0, 1, 2, 3
ACCOUNT = st.integers(0, 7)
# -1 half the time: the role's holder (the banker, governance) or the richest / most locked.
LIKELY = st.one_of(st.just(-1), ACCOUNT)
MOSTLY = st.one_of(st.just(-1), st.just(-1), ACCOUNT)  # -1 two times in three
RECEIVER = st.integers(-2, 7)
SPENDERS = [BANKER, 4, 5, 7]  # whose allowances the test sets and checks
SPENDER = st.sampled_from(SPENDERS)
# part 0..4: that many quarters of what is there; 5: one base unit more than there is.
PART = st.integers(0, 5)
ALLOWANCES = st.sampled_from([0, 1, 7 * EEURO, 10**12, MAX_UINT - 1, MAX_UINT])
MINTS = st.one_of(st.just(0), st.integers(1, 10**12))


def quiet(contract):
    """`contract`, with a short repr: on every revert titanoboa 0.2.8 takes the reverted
    contract's repr, which dumps all its storage (most of a reverting call's cost here)."""
    base = type(contract)
    contract.__class__ = type(
        f"Quiet{base.__name__}", (base,), {"__repr__": lambda self: f"<{self.address}>"}
    )
    return contract


def logs_of(contract) -> list[tuple]:
    """The last call's events as `(name, *fields)` (all from the token itself)."""
    out = []
    for e in contract.get_logs():
        assert e.address == contract.address
        out.append((type(e).__name__, *tuple(e)[1:]))
    return out


def amount_of(base: int, part: int) -> int:
    return base + 1 if part == 5 else base * part // 4


class Model:
    """eEuro as SPEC §4 and the snekmate ERC-20 say."""

    def __init__(self, token: str, governance: str):
        self.token = token
        self.balance: dict[str, int] = {}
        self.allowance: dict[tuple[str, str], int] = {}
        self.locked: dict[str, int] = {}
        self.supply = 0
        self.total_locked = 0
        self.banker = ZERO
        self.owner = governance

    def bal(self, account: str) -> int:
        return self.balance.get(account, 0)

    def allowed(self, owner: str, spender: str) -> int:
        return self.allowance.get((owner, spender), 0)

    def lock_of(self, account: str) -> int:
        return self.locked.get(account, 0)

    def move(self, src: str, dst: str, amount: int) -> None:
        self.balance[src] = self.bal(src) - amount
        self.balance[dst] = self.bal(dst) + amount

    def transfer_fails(self, src: str, dst: str, amount: int) -> str | None:
        if dst == self.token:
            return "eeuro: transfer to this contract"
        if dst == ZERO:
            return "erc20: transfer to the zero address"
        if self.bal(src) < amount:
            return "erc20: transfer amount exceeds balance"
        return None

    def banker_fails(self, caller: str) -> str | None:
        if self.banker == ZERO:
            return "eeuro: banker not set"
        if caller != self.banker:
            return "eeuro: caller is not the banker"
        return None


class World:
    """The token, deployed once per test by a deployer that is not its governance; every
    example runs inside a boa anchor of this state (see the module docstring)."""

    def __init__(self):
        self.deployer = boa.env.generate_address("deployer")
        self.accounts = [
            boa.env.generate_address(name)
            for name in ("governance", "handover", "banker", "banker2")
        ]
        self.accounts += boa_env.accounts(3, "holder")
        self.accounts.append(boa.env.generate_address("stranger"))
        with boa.env.prank(self.deployer):
            self.token = quiet(boa_env.deployer("EEuro").deploy(self.accounts[GOVERNANCE]))
        assert self.token.owner() == self.accounts[GOVERNANCE]


class EEuroMachine(RuleBasedStateMachine):
    world: World
    depth: boa_env.Depth

    @initialize(setup=st.integers(0, 3))
    def start(self, setup):
        """A fresh token; with setup >= 1 governance has set a banker, with setup >= 2 the
        banker has minted to the holders, with setup 3 they have locked some of it (all
        through the rules' checks)."""
        self.depth.example()
        w = self.world
        self.t = w.token
        self.accounts = w.accounts
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.m = Model(self.t.address, w.accounts[GOVERNANCE])
        self.slots = boa_env.Slots(self.t)
        # What the last step changed, for the invariant to re-read (nothing after a revert,
        # which changes no state); everything at the end of each example.
        self.touched: set[str] = set()
        self.touched_locks: set[str] = set()
        self.touched_pairs: set[tuple[str, str]] = set()
        self.changed = True
        self.roles_changed = True
        self.counting = False
        if setup >= 1:
            self.set_banker(caller=-1, new=BANKER)
        for i, holder in enumerate((4, 5, 6)):
            if setup >= 2:
                self.mint(caller=-1, to=holder, amount=(100 + 10 * i) * EEURO)
            if setup == 3:
                self.lock(holder=holder, part=1 + i)
        self.counting = True
        self.clean = False

    def step(self) -> None:
        if self.counting:
            self.depth.step()
        self.clean = False

    def teardown(self):
        try:
            if getattr(self, "clean", False):
                self.check_everything()
        finally:
            if hasattr(self, "_anchor"):
                self._anchor.__exit__(None, None, None)

    # --- helpers ---------------------------------------------------------------------------

    def richest(self) -> str:
        return max(self.accounts, key=self.m.bal)

    def who(self, i: int) -> str:
        """Account `i`; -1 the token itself, -2 the zero address."""
        if i == -1:
            return self.t.address
        if i == -2:
            return ZERO
        return self.accounts[i]

    def banker_or(self, i: int) -> str:
        """-1: the current banker (the first banker if none is set); else account `i`."""
        if i < 0:
            return self.m.banker if self.m.banker != ZERO else self.accounts[BANKER]
        return self.accounts[i]

    def send(self, fn, args: tuple, sender: str, reason: str | None, events: list[tuple]) -> bool:
        """Calls `fn(*args)` from `sender`: it must revert with `reason`, or (reason None)
        succeed, emitting `events`. Returns whether it succeeded."""
        if reason is not None:
            with boa.reverts(reason):
                fn(*args, sender=sender)
            return False
        result = fn(*args, sender=sender)
        # The ERC-20 calls return True; eEuro's own return nothing.
        assert result is (
            True if fn.func_t.name in ("transfer", "approve", "transferFrom") else None
        )
        assert logs_of(self.t) == events
        self.changed = True
        return True

    # --- governance ------------------------------------------------------------------------

    @rule(caller=LIKELY, new=st.sampled_from([BANKER, BANKER2, 4, -2, -1]))
    def set_banker(self, caller, new):
        self.step()
        m = self.m
        sender = m.owner if caller < 0 else self.accounts[caller]
        new_banker = self.who(new)
        reason = None
        if sender != m.owner:
            reason = "ownable: caller is not the owner"
        elif new_banker == self.t.address:
            reason = "eeuro: banker is this contract"
        events = [("BankerSet", m.banker, new_banker)]
        if self.send(self.t.set_banker, (new_banker,), sender, reason, events):
            m.banker = new_banker
            self.roles_changed = True

    @rule(caller=LIKELY, new=st.sampled_from([GOVERNANCE, HANDOVER, 4, -2]))
    def transfer_ownership(self, caller, new):
        self.step()
        m = self.m
        sender = m.owner if caller < 0 else self.accounts[caller]
        new_owner = self.who(new)
        reason = None
        if sender != m.owner:
            reason = "ownable: caller is not the owner"
        elif new_owner == ZERO:
            reason = "ownable: new owner is the zero address"
        events = [("OwnershipTransferred", m.owner, new_owner)]
        if self.send(self.t.transfer_ownership, (new_owner,), sender, reason, events):
            m.owner = new_owner
            self.roles_changed = True

    # --- the banker ------------------------------------------------------------------------

    @rule(caller=LIKELY, to=RECEIVER, amount=MINTS)
    def mint(self, caller, to, amount):
        self.step()
        m = self.m
        sender, receiver = self.banker_or(caller), self.who(to)
        reason = m.banker_fails(sender)
        if reason is None:
            if amount == 0:
                reason = "eeuro: zero amount"
            elif receiver == self.t.address:
                reason = "eeuro: mint to this contract"
            elif receiver == ZERO:
                reason = "erc20: mint to the zero address"
        events = [("Transfer", ZERO, receiver, amount)]
        if self.send(self.t.mint, (receiver, amount), sender, reason, events):
            m.balance[receiver] = m.bal(receiver) + amount
            m.supply += amount
            self.touched.add(receiver)

    @rule(
        burn=st.booleans(),
        caller=MOSTLY,
        holder=MOSTLY,
        part=PART,
    )
    def burn_or_release(self, burn, caller, holder, part):
        """The banker burns (paid out) or releases (returned) part of a holder's lock; -1 as
        the holder: the one with the most locked."""
        self.step()
        m = self.m
        sender = self.banker_or(caller)
        account = max(self.accounts, key=m.lock_of) if holder < 0 else self.accounts[holder]
        held = m.lock_of(account)
        amount = amount_of(held, part)
        reason = m.banker_fails(sender)
        if reason is None:
            if amount == 0:
                reason = "eeuro: zero amount"
            elif amount > held:
                reason = "eeuro: burn exceeds locked" if burn else "eeuro: release exceeds locked"
        token = self.t.address
        if burn:
            fn = self.t.burn
            events = [("Transfer", token, ZERO, amount), ("LockedBurned", account, sender, amount)]
        else:
            fn = self.t.release
            events = [
                ("Transfer", token, account, amount),
                ("LockedReleased", account, sender, amount),
            ]
        if self.send(fn, (account, amount), sender, reason, events):
            m.locked[account] = held - amount
            m.total_locked -= amount
            if burn:
                m.balance[token] -= amount
                m.supply -= amount
                event("the banker burns locked eEuro")
            else:
                m.move(token, account, amount)
                event("the banker releases locked eEuro")
            self.touched |= {token, account}
            self.touched_locks.add(account)

    # --- holders ---------------------------------------------------------------------------

    @rule(src=LIKELY, dst=RECEIVER, part=PART)
    def transfer(self, src, dst, part):
        """-1 as the sender: the account with the most eEuro."""
        self.step()
        m = self.m
        sender = self.richest() if src < 0 else self.accounts[src]
        receiver = self.who(dst)
        amount = amount_of(m.bal(sender), part)
        reason = m.transfer_fails(sender, receiver, amount)
        events = [("Transfer", sender, receiver, amount)]
        if self.send(self.t.transfer, (receiver, amount), sender, reason, events):
            m.move(sender, receiver, amount)
            self.touched |= {sender, receiver}

    @rule(owner=ACCOUNT, spender=st.one_of(SPENDER, st.just(-2)), amount=ALLOWANCES)
    def approve(self, owner, spender, amount):
        self.step()
        m = self.m
        holder, spender_ = self.accounts[owner], self.who(spender)
        reason = "erc20: approve to the zero address" if spender_ == ZERO else None
        events = [("Approval", holder, spender_, amount)]
        if self.send(self.t.approve, (spender_, amount), holder, reason, events):
            m.allowance[(holder, spender_)] = amount
            self.touched_pairs.add((holder, spender_))

    @rule(spender=SPENDER, owner=st.integers(-1, 7), dst=RECEIVER, part=PART, cap=st.booleans())
    def transfer_from(self, spender, owner, dst, part, cap):
        """A spender moves an owner's eEuro: part of the balance, or (cap) of the allowance.
        -1 as the owner: the token itself, which approves nobody (only 0 can be moved)."""
        self.step()
        m = self.m
        caller, holder, receiver = self.accounts[spender], self.who(owner), self.who(dst)
        allowed = m.allowed(holder, caller)
        base = min(allowed, m.bal(holder)) if cap else m.bal(holder)
        amount = amount_of(base, part)
        events = []
        reason = None
        if receiver == self.t.address:
            reason = "eeuro: transfer to this contract"  # checked before the allowance
        elif allowed < MAX_UINT:
            if allowed < amount:
                reason = "erc20: insufficient allowance"
            events.append(("Approval", holder, caller, allowed - amount))
        if reason is None:
            reason = m.transfer_fails(holder, receiver, amount)
        if reason is not None and receiver == self.t.address:
            event("eEuro refused at the token's own address")
        events.append(("Transfer", holder, receiver, amount))
        args = (holder, receiver, amount)
        if self.send(self.t.transferFrom, args, caller, reason, events):
            if allowed < MAX_UINT:
                m.allowance[(holder, caller)] = allowed - amount
            m.move(holder, receiver, amount)
            if holder == self.t.address:
                event("a zero transferFrom out of the token's own balance")
            self.touched |= {holder, receiver}
            self.touched_pairs.add((holder, caller))

    @rule(holder=LIKELY, part=PART)
    def lock(self, holder, part):
        """-1 as the holder: the account with the most eEuro."""
        self.step()
        m = self.m
        sender = self.richest() if holder < 0 else self.accounts[holder]
        amount = amount_of(m.bal(sender), part)
        reason = None
        if amount == 0:
            reason = "eeuro: zero amount"
        elif m.bal(sender) < amount:
            reason = "eeuro: lock exceeds balance"
        token = self.t.address
        new_locked = m.lock_of(sender) + amount
        # FundsLocked's `total_locked` is the holder's new lock, not the token's total.
        events = [
            ("Transfer", sender, token, amount),
            ("FundsLocked", sender, amount, new_locked),
        ]
        if self.send(self.t.lock, (amount,), sender, reason, events):
            m.move(sender, token, amount)
            m.locked[sender] = new_locked
            m.total_locked += amount
            self.touched |= {sender, token}
            self.touched_locks.add(sender)

    @precondition(lambda self: self.m.banker != ZERO)
    @rule(caller=ACCOUNT, fn=st.integers(0, 2), part=PART)
    def not_the_banker(self, caller, fn, part):
        """Anyone but the banker (governance, holders, a former banker) is refused."""
        self.step()
        m = self.m
        sender = self.accounts[caller]
        if sender == m.banker:
            sender = self.accounts[(caller + 1) % len(self.accounts)]
        account = self.accounts[(caller + 4) % len(self.accounts)]
        amount = amount_of(m.lock_of(account), part)
        call = [self.t.mint, self.t.burn, self.t.release][fn]
        with boa.reverts("eeuro: caller is not the banker"):
            call(account, amount, sender=sender)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def matches_model(self):
        if self.changed:
            self.check_step()
        self.changed = False
        self.clean = True

    def check_totals(self, words: bool = True) -> None:
        """Supply and locks conserved, in the model and in the token: from storage words after
        every step (`boa_env.Slots`: a view call costs more than the step), from the views at
        the end of every example (`check_everything`)."""
        m, t, s = self.m, self.t, self.slots
        assert m.supply == sum(m.balance.values())
        assert m.total_locked == sum(m.locked.values())
        assert m.bal(t.address) == m.total_locked
        if words:
            supply, total_locked = s.word("erc20.totalSupply"), s.word("total_locked")
            held = s.word("erc20.balanceOf", t.address)
        else:
            supply, total_locked, held = t.totalSupply(), t.total_locked(), t.balanceOf(t.address)
        assert supply == m.supply
        assert total_locked == m.total_locked
        assert held == m.total_locked

    def check_step(self) -> None:
        m, s = self.m, self.slots
        self.check_totals()
        for account in self.touched:
            assert s.word("erc20.balanceOf", account) == m.bal(account)
        for account in self.touched_locks:
            assert s.word("locked", account) == m.lock_of(account)
        for owner, spender in self.touched_pairs:
            assert s.word("erc20.allowance", owner, spender) == m.allowed(owner, spender)
        if getattr(self, "roles_changed", False):
            assert s.word("banker") == int(m.banker, 16)
            assert s.word("ownable.owner") == int(m.owner, 16)
        self.touched.clear()
        self.touched_locks.clear()
        self.touched_pairs.clear()
        self.roles_changed = False

    def check_everything(self) -> None:
        """The views against the model, everything the example touched."""
        m, t = self.m, self.t
        self.check_totals(words=False)
        holders = [*self.accounts, t.address]
        balances = [t.balanceOf(a) for a in holders]
        assert balances == [m.bal(a) for a in holders]
        assert sum(balances) == t.totalSupply()
        locks = [t.locked(a) for a in holders]
        assert locks == [m.lock_of(a) for a in holders]
        assert sum(locks) == t.total_locked()
        # Every allowance the example set or spent (the others stay 0: each step checked the
        # one pair it touched, and approve / transferFrom touch one pair).
        for (owner, spender), amount in m.allowance.items():
            assert t.allowance(owner, spender) == amount
        assert t.banker() == m.banker
        assert t.owner() == m.owner


def test_eeuro_state_machine(record_property):
    EEuroMachine.world = World()
    EEuroMachine.depth = boa_env.Depth()
    EEuroMachine.TestCase.settings = boa_env.settings_for()
    EEuroMachine.TestCase().runTest()
    EEuroMachine.depth.check_and_record(record_property, "eeuro", boa_env.EXAMPLES)
