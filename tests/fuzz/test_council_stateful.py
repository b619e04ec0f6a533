"""Stateful property test of the Council (SPEC §2, issue 9) on titanoboa (`boa_env.py`).

Each example starts with one to six voters. Voters vote on actions that add or remove a voter
(from a pool of ten candidates, plus the deployer, the zero address and a stranger), set the
ballot lifetime (valid and out of range) and govern an EnergyLedger the Council owns
(register / remove a storage unit, set its parameters, its session grace or a unit's max
report, valid and not); they vote again on open ballots (a further YES, or the same voter
flipping YES -> NO -> YES); campaigns push voter changes (some removing the dissenters of
a ballot) towards their passing vote, and a landslide removes all of a ballot's dissenters so
that its stale majority survives a NO; voters `execute` ballots and openers `withdraw` theirs;
outsiders try to vote, execute, withdraw and call governed functions directly; malformed
votes; time passes; anyone closes ballots (expired or not, or unknown).

A plain-Python reference model keeps the voters with their slots and how many open ballots
each opened (the quota), the ballots with their opener, YES / NO slots, expiry and place in
the open list (swap-and-pop, as the contract, also in `remove_voter`'s walk) and the ledger
the Council governs. It predicts every call: whether it reverts (and the exact reason: the
action's own when the passing vote executes a failing action) or what it does, its return
value and every event, the action's included. Checked:

- every vote: its events, the voted ballot's `ballot(key)` (the model's target, selector,
  opener, YES / NO tallies, voter count, expiry) and the voter's `vote_of`, and the quota
  (`ballots_opened`) of whoever opened a ballot it opened or closed; a vote executes exactly
  when it is a YES that gives the ballot a strict majority (`2 * yes > voters`), a NO never
  executes;
- after every step that changed the voters, and at the end of every example: the voters
  (slot order) are the model's, no address listed twice (no slot double-assigned), their
  count never below one, the lifetime and every voter's quota the model's; and then as well
  as after a step that let a ballot expire: every open ballot (`open_ballots()`, in list
  order) is the model's, and its tally equals the number of current voters whose YES (cast
  in their current tenure) it holds: only current voters' YES count, a removed voter's
  weight counts in no open ballot (their votes are cleared and the ballots they opened
  withdrawn; `vote_of` is 0 for them), a voter given a freed slot starts afresh;
- stale majorities (issue 9, finding 2): removing voters can leave a live ballot holding a
  strict majority that did not execute; it runs on the next YES or an `execute`, a NO leaves
  it as it is. The check: a live ballot holds a majority only if voters were removed since
  its last YES, which left it short of one.

Every example starts from Councils deployed once per test, restored with a boa anchor:
titanoboa 0.2.8 recomputes a deployment source map on every `.deploy()` (~13-50 ms per
contract), which would cost more than the steps themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import boa
from eth_utils import keccak
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.fuzz import boa_env

ZERO = "0x" + "00" * 20
ZERO_KEY = b"\x00" * 32
DAY = 86400
DEFAULT_LIFETIME = 7 * DAY
MIN_LIFETIME = 3600
MAX_LIFETIME = 90 * DAY
MAX_VOTERS = 64
VOTER_SLOTS = 64
BALLOTS_PER_VOTER = 2
MAX_OPEN = MAX_VOTERS * BALLOTS_PER_VOTER
WAD = 10**18

CANDIDATES = 10
# Indexes into `World.people`: 0 is the deployer, 1..10 the candidates; -1 the zero
# address (add) or the stranger (remove).
PERSON = st.integers(-1, CANDIDATES)
LIFETIMES = [0, MIN_LIFETIME - 1, MIN_LIFETIME, DAY, DEFAULT_LIFETIME, 30 * DAY]
LIFETIMES += [MAX_LIFETIME, MAX_LIFETIME + 1]
WAITS = [1, 3599, 3600, DAY, DEFAULT_LIFETIME - 1, DEFAULT_LIFETIME, DEFAULT_LIFETIME + 1]
WAITS += [30 * DAY, MAX_LIFETIME + 1]
DEFAULT_PARAMS = (WAD // 2, WAD // 2, WAD // 20, WAD // 5, 7200)
PARAMS = [
    DEFAULT_PARAMS,
    (0, 0, 1, 0, 60),
    (WAD - 1, WAD - 1, WAD - 1, WAD - 1, 30 * DAY),
    (WAD, 0, 1, 0, 60),
    (0, WAD, 1, 0, 60),
    (0, 0, 0, 0, 60),
    (0, 0, WAD, 0, 60),
    (0, 0, 1, WAD, 60),
    (0, 0, 1, 0, 59),
    (0, 0, 1, 0, 30 * DAY + 1),
]
GRACES = [59, 60, 900, 86400, 86401]  # the ledger's session grace: 60 s .. one day
DEFAULT_GRACE = 900
CAPS = [0, 1, 5_000, 2**40, 2**40 + 1]  # a unit's max report: 1 .. 2**40 Wh
DEFAULT_CAP = 100_000_000  # given at a unit's first registration

ACTIONS = st.one_of(
    st.tuples(st.just("add"), PERSON),
    st.tuples(st.just("remove"), PERSON),
    st.tuples(st.just("remove_voter"), st.integers(0, 63)),  # the k-th current voter
    st.tuples(st.just("lifetime"), st.sampled_from(LIFETIMES)),
    st.tuples(st.just("register"), st.integers(0, 1), st.integers(-1, 1)),
    st.tuples(st.just("unregister"), st.integers(0, 1)),
    st.tuples(st.just("params"), st.sampled_from(PARAMS)),
    st.tuples(st.just("grace"), st.sampled_from(GRACES)),
    st.tuples(st.just("unitcap"), st.integers(0, 1), st.sampled_from(CAPS)),
)


def logs_of(contract) -> list[tuple]:
    """The last call's events as `(name, address, *fields)`."""
    return [(type(e).__name__, *e) for e in contract.get_logs()]


@dataclass
class Ballot:
    action: tuple
    target: str
    data: bytes
    expires_at: int
    opener: str
    yes: set[int] = field(default_factory=set)  # slots, as the contract's masks
    no: set[int] = field(default_factory=set)
    # The same YES votes by (voter, tenure): what SPEC §2 says counts.
    yes_who: set[tuple[str, int]] = field(default_factory=set)
    voters_at_yes: int = 0  # the voter count at the last YES (or the opening)


class Model:
    """The Council and the ledger it governs, as SPEC §2 and the contracts say."""

    def __init__(self, deployer: str, now: int):
        self.slot_of: dict[str, int] = {}
        self.voter_at: dict[int, str] = {}
        self.opened: dict[str, int] = {}  # voter -> open ballots they opened
        self.tenure: dict[str, int] = {}  # current voter -> which of their terms this is
        self.terms: dict[str, int] = {}
        self.reused: set[int] = set()
        self.lifetime = DEFAULT_LIFETIME
        self.ballots: dict[bytes, Ballot] = {}
        self.open: list[bytes] = []
        self.units: dict[str, tuple[str, bool, int]] = {}  # unit -> (owner, active, max report)
        self.params = DEFAULT_PARAMS
        self.grace = DEFAULT_GRACE
        self.add_voter(deployer)

    @staticmethod
    def now() -> int:
        return boa.env.timestamp

    @property
    def voters(self) -> int:
        return len(self.slot_of)

    def ordered_voters(self) -> list[str]:
        return [self.voter_at[s] for s in sorted(self.voter_at)]

    def tally(self, slots: set[int]) -> int:
        return len(slots & self.voter_at.keys())

    def live_yes(self, b: Ballot) -> int:
        return sum(1 for who, t in b.yes_who if self.tenure.get(who) == t)

    def unit(self, unit: str) -> tuple[str, bool, int]:
        return self.units.get(unit, (ZERO, False, 0))

    def free_slot(self) -> int:
        return min(set(range(VOTER_SLOTS)) - self.voter_at.keys())

    def add_voter(self, voter: str) -> None:
        slot = self.free_slot()
        if slot in self.reused:
            event("a freed voter slot is given to a new voter")
        self.reused.add(slot)
        self.slot_of[voter] = slot
        self.voter_at[slot] = voter
        self.opened[voter] = 0
        self.terms[voter] = self.tenure[voter] = self.terms.get(voter, 0) + 1

    def remove_voter(self, voter: str, council: str) -> list[tuple]:
        """The contract's walk of the open list: withdraws the ballots `voter` opened
        (swap-and-pop: the ballot moved into place i is looked at next), clears their votes
        from the others. Returns the events."""
        slot = self.slot_of[voter]
        events = []
        i = 0
        while i < len(self.open):
            key = self.open[i]
            b = self.ballots[key]
            if b.opener == voter:
                self.close(key)
                events.append(("BallotWithdrawn", council, key, voter))
                continue
            b.yes.discard(slot)
            b.no.discard(slot)
            b.yes_who = {(who, t) for who, t in b.yes_who if who != voter}
            i += 1
        assert self.opened.pop(voter) == 0
        del self.slot_of[voter], self.voter_at[slot], self.tenure[voter]
        events.append(("VoterRemoved", council, voter, self.voters))
        return events

    def close(self, key: bytes) -> None:
        index = self.open.index(key)
        last = self.open.pop()
        if last != key:
            self.open[index] = last
        self.opened[self.ballots.pop(key).opener] -= 1

    def action_fails(self, action: tuple, who) -> str | None:
        """Why executing `action` reverts (the target's reason), or None."""
        kind = action[0]
        if kind == "add":
            if who == ZERO:
                return "council: zero voter"
            if who in self.slot_of:
                return "council: already a voter"
            if self.voters >= MAX_VOTERS:
                return "council: too many voters"
        elif kind == "remove":
            if who not in self.slot_of:
                return "council: not a voter"
            if self.voters <= 1:
                return "council: last voter"
        elif kind == "lifetime":
            if not MIN_LIFETIME <= action[1] <= MAX_LIFETIME:
                return "council: lifetime out of range"
        elif kind == "register":
            unit, owner = who
            if owner == ZERO:
                return "ledger: zero address"
            if self.unit(unit)[1]:
                return "ledger: unit already active"
        elif kind == "unregister":
            if not self.unit(who)[1]:
                return "ledger: unit not active"
        elif kind == "grace":
            if not 60 <= action[1] <= 86400:
                return "ledger: grace out of range"
        elif kind == "unitcap":
            if not 1 <= action[2] <= 2**40:
                return "ledger: max report out of range"
            if self.unit(who)[2] == 0:
                return "ledger: unknown unit"
        else:
            m, b, c, f, h = action[1]
            if m >= WAD:
                return "ledger: M out of range"
            if b >= WAD:
                return "ledger: B out of range"
            if c == 0 or c >= WAD:
                return "ledger: C out of range"
            if f >= WAD:
                return "ledger: F out of range"
            if not 60 <= h <= 30 * DAY:
                return "ledger: H out of range"
        return None

    def execute(self, action: tuple, who, council: str, ledger: str) -> list[tuple]:
        """Applies `action` (which does not fail) and returns the events it emits."""
        kind = action[0]
        if kind == "add":
            self.add_voter(who)
            return [("VoterAdded", council, who, self.voters)]
        if kind == "remove":
            return self.remove_voter(who, council)
        if kind == "lifetime":
            self.lifetime = action[1]
            return [("BallotLifetimeSet", council, action[1])]
        if kind == "register":
            unit, owner = who
            self.units[unit] = (owner, True, self.unit(unit)[2] or DEFAULT_CAP)
            return [("UnitRegistered", ledger, unit, owner)]
        if kind == "unregister":
            owner, _, cap = self.unit(who)
            self.units[who] = (owner, False, cap)
            return [("UnitRemoved", ledger, who, 0)]
        if kind == "grace":
            self.grace = action[1]
            return [("SessionGraceSet", ledger, action[1])]
        if kind == "unitcap":
            owner, active, _ = self.unit(who)
            self.units[who] = (owner, active, action[2])
            return [("UnitMaxReportSet", ledger, who, action[2])]
        self.params = action[1]
        return [("ParametersSet", ledger, *action[1])]


class World:
    """Six Councils, each with a ledger it owns: one whose deployer is its only voter, and
    ones where the deployer's votes then added candidates 1..n (n = 1..5), each by a passed
    vote. Deployed once per test; every example picks one and runs inside a boa anchor of
    this state (see the module docstring)."""

    def __init__(self):
        self.deployer = boa.env.generate_address("deployer")
        self.people = [self.deployer, *boa_env.accounts(CANDIDATES, "candidate")]
        self.stranger = boa.env.generate_address("stranger")
        self.outsiders = boa_env.accounts(2, "outsider")
        self.units = boa_env.accounts(2, "unit")
        self.owners = boa_env.accounts(2, "unit_owner")
        self.setups = []
        for n in range(6):
            with boa.env.prank(self.deployer):
                council = boa_env.quiet(boa_env.deployer("Council").deploy())
                ledger = boa_env.quiet(boa_env.deployer("EnergyLedger").deploy(council.address))
            for i in range(1, n + 1):
                data = council.add_voter.prepare_calldata(self.people[i])
                assert any(council.vote(council, data, sender=v) for v in self.people[:i])
            assert council.voters() == self.people[: n + 1]
            assert council.open_ballots() == []
            self.setups.append((council, ledger, {}))  # the last: calldata by action
        self.started = boa.env.timestamp


class CouncilMachine(RuleBasedStateMachine):
    world: World
    depth: boa_env.Depth

    @initialize(n=st.integers(0, 5))
    def start(self, n):
        """A fresh Council with the deployer and `n` candidates as voters."""
        self.depth.example()
        w = self.world
        self.council, self.ledger, self.calldata = w.setups[n]
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        assert boa.env.timestamp == w.started
        self.m = Model(w.deployer, w.started)
        for voter in w.people[1 : n + 1]:
            self.m.add_voter(voter)
        # The invariant re-reads the voters and every open ballot after the voters changed,
        # every open ballot after one expired (the views change), not after a vote or a close
        # (which change one ballot: the rule checks its `ballot(key)`) nor after a revert
        # (which changes no state). Everything again, the ledger too, at the end of each
        # example.
        self.recheck_all = True
        self.recheck_ballots = False
        self.clean = False

    def step(self) -> None:
        self.depth.step()
        self.clean = False

    def teardown(self):
        try:
            if getattr(self, "clean", False):
                # The end of a passing example: everything once more.
                self.check_all()
                self.check_quota(*self.m.slot_of)
                self.check_ledger()
        finally:
            if hasattr(self, "_anchor"):
                self._anchor.__exit__(None, None, None)

    # --- helpers ---------------------------------------------------------------------------

    def resolve(self, action: tuple):
        """The address(es) an action is about."""
        w = self.world
        kind = action[0]
        if kind == "add":
            return ZERO if action[1] < 0 else w.people[action[1]]
        if kind == "remove":
            return w.stranger if action[1] < 0 else w.people[action[1]]
        if kind == "register":
            return w.units[action[1]], ZERO if action[2] < 0 else w.owners[action[2]]
        if kind in ("unregister", "unitcap"):
            return w.units[action[1]]
        return None

    def concrete(self, action: tuple) -> tuple:
        """("remove_voter", k) as ("remove", the k-th current voter)."""
        if action[0] == "remove_voter":
            return ("remove", self.world.people.index(self.voter(action[1])))
        return action

    def encode(self, action: tuple) -> tuple[str, bytes, bytes]:
        """(target, calldata, ballot key) of an action; the key is checked against
        `action_key` once per action."""
        cached = self.calldata.get(action)
        if cached is not None:
            return cached
        c, ledger = self.council, self.ledger
        who = self.resolve(action)
        kind = action[0]
        if kind == "add":
            target, data = c.address, c.add_voter.prepare_calldata(who)
        elif kind == "remove":
            target, data = c.address, c.remove_voter.prepare_calldata(who)
        elif kind == "lifetime":
            target, data = c.address, c.set_ballot_lifetime.prepare_calldata(action[1])
        elif kind == "register":
            target, data = ledger.address, ledger.register_storage_unit.prepare_calldata(*who)
        elif kind == "unregister":
            target, data = ledger.address, ledger.remove_storage_unit.prepare_calldata(who)
        elif kind == "grace":
            target, data = ledger.address, ledger.set_session_grace.prepare_calldata(action[1])
        elif kind == "unitcap":
            fn = ledger.set_unit_max_report
            target, data = ledger.address, fn.prepare_calldata(who, action[2])
        else:
            target, data = ledger.address, ledger.set_parameters.prepare_calldata(*action[1])
        key = keccak(bytes.fromhex(target[2:]) + data)
        assert c.action_key(target, data) == key
        self.calldata[action] = (target, data, key)
        return target, data, key

    def voter(self, v: int) -> str:
        voters = self.m.ordered_voters()
        return voters[v % len(voters)]

    def person(self, p: int) -> str:
        """-2, -1: the outsiders (never voters); 0..10 the deployer and the candidates."""
        w = self.world
        return w.outsiders[p] if p < 0 else w.people[p]

    def expected_view(self, key: bytes) -> tuple:
        """`ballot(key)` as the model has it (all zeros for no open ballot)."""
        b = self.m.ballots.get(key)
        if b is None:
            return (ZERO_KEY, ZERO, b"\x00" * 4, ZERO, 0, 0, 0, 0, False)
        m = self.m
        return (
            key,
            b.target,
            b.data[:4],
            b.opener,
            m.tally(b.yes),
            m.tally(b.no),
            m.voters,
            b.expires_at,
            b.expires_at <= m.now(),
        )

    def check_quota(self, *voters: str) -> None:
        for voter in voters:
            if voter in self.m.slot_of:
                assert self.council.ballots_opened(voter) == self.m.opened[voter]

    def passed(self, key: bytes, b: Ballot, events: list[tuple]) -> tuple[str, list[tuple]]:
        """Closes `b` as its passing vote or `execute` does and runs its action: returns the
        revert reason of the action, or None and the events."""
        m = self.m
        action = b.action
        who = self.resolve(action)
        reason = m.action_fails(action, who)
        if reason is not None:
            return reason, events
        yes = m.tally(b.yes)
        m.close(key)
        events.append(("BallotPassed", self.council.address, key, b.target, yes, m.voters))
        events += m.execute(action, who, self.council.address, self.ledger.address)
        return None, events

    def vote(self, sender: str, action: tuple) -> bool | None:
        """Casts `sender`'s vote on `action` as the model predicts it; returns whether it
        passed, or None if it reverted (with the predicted reason)."""
        m, council = self.m, self.council
        target, data, key = self.encode(action)
        now = m.now()
        if sender not in m.slot_of:
            with boa.reverts("council: not a voter"):
                council.vote(target, data, sender=sender)
            return None
        slot = m.slot_of[sender]
        old = m.ballots.get(key)
        expired = old is not None and old.expires_at <= now
        events = []
        if expired:
            events.append(("BallotExpired", council.address, key))
        support = True
        if old is None or expired:
            # Closing the expired ballot gives its opener (maybe the sender) their quota back.
            quota = m.opened[sender] - (expired and old.opener == sender)
            reason = None
            if quota >= BALLOTS_PER_VOTER:
                reason = "council: ballot quota used"
            elif len(m.open) - expired >= MAX_OPEN:
                reason = "council: too many open ballots"
            if reason is not None:
                with boa.reverts(reason):
                    council.vote(target, data, sender=sender)
                return None
            b = Ballot(action, target, data, now + m.lifetime, sender, {slot})
            b.yes_who.add((sender, m.tenure[sender]))
            events.append(
                ("BallotOpened", council.address, key, target, sender, data, b.expires_at)
            )
        else:
            if old.expires_at > now and 2 * m.tally(old.yes) > m.voters:
                event("a vote on a live ballot holding a stale majority")
            b = Ballot(action, target, data, old.expires_at, old.opener, set(old.yes), set(old.no))
            b.yes_who = set(old.yes_who)
            b.voters_at_yes = old.voters_at_yes
            support = slot not in b.yes
            me = (sender, m.tenure[sender])
            if support:
                b.yes.add(slot)
                b.yes_who.add(me)
            else:
                b.yes.discard(slot)
                b.yes_who.discard(me)
            tally = m.tally(b.yes)
            if slot in b.no or not support:
                b.no ^= {slot}
                events.append(
                    ("VoteFlipped", council.address, key, sender, support, tally, m.voters)
                )
            else:
                events.append(("Voted", council.address, key, sender, tally, m.voters))
        if support:
            b.voters_at_yes = m.voters
        passes = support and 2 * m.tally(b.yes) > m.voters
        if passes:
            reason = m.action_fails(action, self.resolve(action))
            if reason is not None:
                with boa.reverts(reason):
                    council.vote(target, data, sender=sender)
                return None
        elif not support and 2 * m.tally(b.yes) > m.voters:
            event("a NO leaves a stale majority unexecuted")

        result = council.vote(target, data, sender=sender)

        openers = set()  # whose quota moved: who opened a ballot this vote opened or closed
        if expired:
            openers.add(old.opener)
            m.close(key)
        if key not in m.ballots:
            openers.add(sender)
            m.open.append(key)
            m.opened[sender] += 1
        m.ballots[key] = b
        if passes:
            openers.add(b.opener)
            reason, events = self.passed(key, b, events)
            assert reason is None
        assert result is passes
        assert logs_of(council) == events
        view = council.ballot(key)
        assert tuple(view) == self.expected_view(key)
        if not passes:
            assert view.yes == m.live_yes(b)
            want = 1 if slot in b.yes else 2 if slot in b.no else 0
            assert council.vote_of(key, sender) == want
        self.check_quota(*openers)
        if passes:
            self.after_action(b.action, self.resolve(b.action))
        return passes

    def after_action(self, action: tuple, who) -> None:
        kind = action[0]
        if kind in ("add", "remove"):
            assert self.council.is_voter(who) == (kind == "add")
            assert self.council.ballots_opened(who) == 0
            self.recheck_all = True  # every tally, the voters and their quotas
        if kind == "lifetime":
            assert self.council.ballot_lifetime() == self.m.lifetime
        if kind == "remove":
            event("a voter is removed")
            now = self.m.now()
            for key in self.m.open:
                b = self.m.ballots[key]
                if b.expires_at > now and 2 * self.m.tally(b.yes) > self.m.voters:
                    event("a removal leaves a live ballot holding a stale majority")
        if kind in ("register", "unregister", "params", "grace", "unitcap"):
            self.check_ledger()

    # --- rules -----------------------------------------------------------------------------

    @rule(v=st.integers(0, 63), action=ACTIONS)
    def vote_on_action(self, v, action):
        """A voter votes on an action; three times in four, a voter at their quota of open
        ballots leaves it to the first voter who is not (if any)."""
        self.step()
        voter = self.voter(v)
        if v % 4 and self.m.opened[voter] >= BALLOTS_PER_VOTER:
            free = [x for x in self.m.ordered_voters() if self.m.opened[x] < BALLOTS_PER_VOTER]
            voter = free[0] if free else voter
        self.vote(voter, self.concrete(action))

    @precondition(lambda self: self.m.open)
    @rule(v=st.integers(0, 63), i=st.integers(-8, 63))
    def vote_again(self, v, i):
        """A voter votes on an open ballot (the oldest ones or, with i < 0, the newest): a
        further YES, or a flip of their own vote."""
        self.step()
        key = self.m.open[i % len(self.m.open)]
        self.vote(self.voter(v), self.m.ballots[key].action)

    @rule(
        kind=st.sampled_from(["add", "remove", "dissenter"]),
        k=st.integers(0, 63),
        v=st.integers(0, 63),
    )
    def campaign(self, kind, k, v):
        """Two voters, the v-th and the next in slot order whose YES the ballot does not hold
        yet, vote YES on adding the k-th person who is not a voter (the zero address if all
        are), on removing the k-th voter, or on removing the k-th dissenter of the live
        ballot with the most YES (a voter who neither opened it nor votes YES on it, which
        grows a stale majority, to the point where it survives a NO), each an ordinary vote
        checked as such, unless the first passes or reverts: voter changes, and what they do
        to the open ballots, are common rather than rare. (Two votes, not the whole way: a
        step stays cheap.)"""
        self.step()
        m, people = self.m, self.world.people
        if kind == "add":
            outside = [i for i, p in enumerate(people) if p not in m.slot_of] or [-1]
            action = ("add", outside[k % len(outside)])
        else:
            target = self.voter(k)
            running = [m.ballots[key] for key in m.open if m.ballots[key].expires_at > m.now()]
            if kind == "dissenter" and running:
                best = max(running, key=lambda b: m.tally(b.yes))
                dissent = [
                    x
                    for x in m.ordered_voters()
                    if x != best.opener and m.slot_of[x] not in best.yes
                ]
                target = dissent[k % len(dissent)] if dissent else target
            action = ("remove", people.index(target))
        key = self.encode(action)[2]
        voters = self.m.ordered_voters()
        votes = 0
        for i in range(len(voters)):
            voter = voters[(v + i) % len(voters)]
            b = self.m.ballots.get(key)
            live = b is not None and b.expires_at > self.m.now()
            if live and self.m.slot_of[voter] in b.yes:
                continue
            votes += 1
            if self.vote(voter, action) is not False or votes == 2:
                break

    @rule(
        i=st.integers(-1, 63),
        p=st.one_of(st.integers(0, 63), st.integers(-2, CANDIDATES).map(lambda p: (p,))),
    )
    def execute(self, i, p):
        """A voter (p an int) or anyone (p a 1-tuple: maybe not a voter) executes an open
        ballot, or with i < 0 one that is not open."""
        self.step()
        m = self.m
        sender = self.voter(p) if isinstance(p, int) else self.person(p[0])
        if i < 0 or not m.open:
            action = ("lifetime", 1000 + i)  # never voted on
        else:
            action = m.ballots[m.open[i % len(m.open)]].action
        self.execute_ballot(sender, action)

    def stale(self) -> list[bytes]:
        """The live ballots that hold a strict majority (without having run)."""
        m = self.m
        now = m.now()
        return [
            k
            for k in m.open
            if m.ballots[k].expires_at > now and 2 * m.tally(m.ballots[k].yes) > m.voters
        ]

    @precondition(lambda self: self.stale())
    @rule(how=st.sampled_from(["no", "yes", "execute"]), v=st.integers(0, 63))
    def stale_majority(self, how, v):
        """A ballot holding a stale majority: a voter whose YES it holds votes again (a NO,
        which must not execute it), another voter votes YES (which executes it), or a voter
        executes it."""
        self.step()
        m = self.m
        key = self.stale()[v % len(self.stale())]
        b = m.ballots[key]
        yes = [m.voter_at[s] for s in sorted(b.yes & m.voter_at.keys())]
        others = [x for x in m.ordered_voters() if x not in yes]
        if how == "no":
            assert self.vote(yes[v % len(yes)], b.action) is False
        elif how == "yes" and others:
            assert self.vote(others[v % len(others)], b.action) is not False
        else:
            self.execute_ballot(self.voter(v), b.action)

    def landslide_ballot(self) -> bytes | None:
        """A live ballot with three or more YES, not all voters': removing every voter who
        neither opened it nor votes YES on it leaves a majority that survives a NO."""
        m = self.m
        for key in m.open:
            b = m.ballots[key]
            yes = m.tally(b.yes)
            left = len(self.keepers(b))  # once the dissenters are gone
            if b.expires_at > m.now() and 2 * (yes - 1) > left and m.voters > left:
                return key
        return None

    def keepers(self, b: Ballot) -> set[str]:
        """The voters a landslide keeps: the ballot's YES voters, its opener, and the voter
        it removes, if it removes one (removing them by another ballot would run it)."""
        m = self.m
        keep = {m.voter_at[s] for s in b.yes & m.voter_at.keys()} | {b.opener}
        if b.action[0] == "remove":
            keep.add(self.resolve(b.action))
        return keep & m.slot_of.keys()

    @precondition(lambda self: self.landslide_ballot() is not None)
    @rule(v=st.integers(0, 63))
    def landslide(self, v):
        """The voters remove every dissenter of a live ballot with three or more YES (each
        removal by ordinary votes until it passes; see `keepers`); the ballot then holds a
        stale majority large enough to survive a NO, and one of its YES voters votes NO: it
        must not execute."""
        self.step()
        m = self.m
        key = self.landslide_ballot()
        b = m.ballots[key]
        keep = self.keepers(b)
        for dissenter in [x for x in m.ordered_voters() if x not in keep]:
            action = ("remove", self.world.people.index(dissenter))
            key_r = self.encode(action)[2]
            for voter in m.ordered_voters():
                r = m.ballots.get(key_r)
                if voter == dissenter or (r is not None and m.slot_of[voter] in r.yes):
                    continue
                if self.vote(voter, action):
                    break
            if dissenter in m.slot_of:
                return  # a removal did not pass (no voter had quota to open it)
        assert m.ballots.get(key) is b and 2 * (m.tally(b.yes) - 1) > m.voters
        event("a landslide leaves a stale majority that survives a NO")
        yes = [m.voter_at[s] for s in sorted(b.yes)]
        assert self.vote(yes[v % len(yes)], b.action) is False

    def execute_ballot(self, sender: str, action: tuple) -> None:
        m, council = self.m, self.council
        target, data, key = self.encode(action)
        b = m.ballots.get(key)
        reason = None
        if sender not in m.slot_of:
            reason = "council: not a voter"
        elif b is None:
            reason = "council: no such ballot"
        elif b.expires_at <= m.now():
            reason = "council: ballot expired"
        elif 2 * m.tally(b.yes) <= m.voters:
            reason = "council: no majority"
        else:
            reason, events = self.passed(key, b, [])
        if reason is not None:
            with boa.reverts(reason):
                council.execute(target, data, sender=sender)
            return
        event("a stale majority is executed")
        assert council.execute(target, data, sender=sender) is True
        assert logs_of(council) == events
        assert tuple(council.ballot(key)) == self.expected_view(key)
        self.check_quota(b.opener)
        self.after_action(action, self.resolve(action))

    @precondition(lambda self: self.m.open)
    @rule(i=st.integers(0, 63), p=st.one_of(st.none(), st.integers(-2, CANDIDATES)))
    def withdraw(self, i, p):
        """The opener of an open ballot withdraws it (p None), or someone else tries to."""
        self.step()
        m, council = self.m, self.council
        key = m.open[i % len(m.open)]
        b = m.ballots[key]
        sender = b.opener if p is None else self.person(p)
        if sender != b.opener:
            with boa.reverts("council: not the opener"):
                council.withdraw(key, sender=sender)
            return
        council.withdraw(key, sender=sender)
        m.close(key)
        assert logs_of(council) == [("BallotWithdrawn", council.address, key, sender)]
        assert tuple(council.ballot(key)) == self.expected_view(key)
        self.check_quota(sender)

    @rule(
        kind=st.sampled_from(["outsider", "malformed", "direct", "unknown"]),
        p=st.integers(-2, CANDIDATES),
        action=ACTIONS,
        fn=st.integers(0, 5),
        n=st.integers(0, 3),
    )
    def misuse(self, kind, p, action, fn, n):
        """What must revert, and change nothing: a vote by a stranger or by a candidate who is
        not (or no longer) a voter; a vote with a zero target or without a selector; a
        governed function called directly (only the Council's own call, i.e. a passed vote,
        is accepted); closing or withdrawing a ballot that does not exist."""
        self.step()
        w, c, ledger = self.world, self.council, self.ledger
        caller = self.person(p)
        if kind == "outsider":
            if caller in self.m.slot_of:
                caller = w.outsiders[0]
            if action[0] == "remove_voter":
                action = ("remove", action[1] % (CANDIDATES + 1))
            assert self.vote(caller, action) is None
        elif kind == "malformed":
            selector = c.add_voter.prepare_calldata(ZERO)[:4]
            voter = self.voter(fn + n)
            if fn % 2:  # the target is checked first
                with boa.reverts("council: zero target"):
                    c.vote(ZERO, selector[: n + fn // 2], sender=voter)
            else:
                with boa.reverts("council: no selector"):
                    c.vote(c.address, selector[:n], sender=voter)
        elif kind == "direct":
            calls = [
                (c.add_voter, (w.stranger,), "council: only by vote"),
                (c.remove_voter, (w.deployer,), "council: only by vote"),
                (c.set_ballot_lifetime, (DAY,), "council: only by vote"),
                (ledger.register_storage_unit, (w.units[0], w.owners[0]), None),
                (ledger.remove_storage_unit, (w.units[0],), None),
                (ledger.set_parameters, DEFAULT_PARAMS, None),
            ]
            fn_, args, reason = calls[fn]
            with boa.reverts(reason or "ownable: caller is not the owner"):
                fn_(*args, sender=caller)
        else:
            key = keccak(b"no such action %d" % fn)
            gone = [k for _, _, k in self.calldata.values() if k not in self.m.ballots]
            if fn % 2 and gone:
                key = gone[n % len(gone)]  # passed, closed, withdrawn or never opened
            with boa.reverts("council: no such ballot"):
                if n % 2:
                    c.close_expired(key, sender=caller)
                else:
                    c.withdraw(key, sender=caller)

    @rule(seconds=st.sampled_from(WAITS))
    def time_passes(self, seconds):
        self.step()
        before = self.m.now()
        boa.env.time_travel(seconds=seconds)
        # Time changes a view only through `expired`: re-read if some ballot just expired.
        if any(before < b.expires_at <= self.m.now() for b in self.m.ballots.values()):
            self.recheck_ballots = True

    @precondition(lambda self: self.m.open)
    @rule(i=st.integers(0, 63), o=st.integers(0, 1))
    def close_expired(self, i, o):
        """Anyone may close an expired ballot; a live one cannot be closed."""
        self.step()
        m, council = self.m, self.council
        key = m.open[i % len(m.open)]
        b = m.ballots[key]
        sender = self.world.outsiders[o]
        if b.expires_at > m.now():
            with boa.reverts("council: ballot not expired"):
                council.close_expired(key, sender=sender)
            return
        council.close_expired(key, sender=sender)
        m.close(key)
        assert logs_of(council) == [("BallotExpired", council.address, key)]
        assert tuple(council.ballot(key)) == self.expected_view(key)
        self.check_quota(b.opener)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def matches_model(self):
        # (After a vote or a close, the rule checked that ballot's view, whose `voters` is the
        # voter count, and any BallotOpened's expiry, which is now + the ballot lifetime.)
        if self.recheck_all:
            self.check_all()
        elif self.recheck_ballots:
            self.check_ballots()
        self.recheck_all = self.recheck_ballots = False
        self.clean = True

    def check_all(self) -> None:
        m, council = self.m, self.council
        voters = council.voters()
        assert voters == m.ordered_voters()
        assert len(set(voters)) == len(voters)
        assert len(set(m.slot_of.values())) == len(m.slot_of)
        assert council.voter_count() == m.voters >= 1
        assert council.ballot_lifetime() == m.lifetime
        assert sum(m.opened.values()) == len(m.open)
        assert max(m.opened.values()) <= BALLOTS_PER_VOTER
        # (A voter change moves no other voter's quota: each rule checks the quota of every
        # opener whose ballot it opened or closed, the teardown everyone's.)
        self.check_ballots()

    def check_ballots(self) -> None:
        m = self.m
        now = m.now()
        views = self.council.open_ballots()
        assert [v.key for v in views] == m.open
        for view in views:
            b = m.ballots[view.key]
            assert tuple(view) == self.expected_view(view.key)
            # Only current voters' YES of their current tenure count (expired ballots too).
            assert view.yes == m.live_yes(b)
            if b.expires_at > now and 2 * view.yes > view.voters:
                # A stale majority: only through removals since the ballot's last YES, which
                # left it short of a majority.
                assert b.voters_at_yes > view.voters

    def check_ledger(self) -> None:
        assert tuple(self.ledger.params()) == self.m.params
        assert self.ledger.session_grace() == self.m.grace
        for unit in self.world.units:
            owner, active, cap = self.m.unit(unit)
            # (owner, active, available Wh, locked Wh, last sequence number, max report)
            assert tuple(self.ledger.unit_info(unit)) == (owner, active, 0, 0, 0, cap)


def test_council_state_machine(record_property):
    CouncilMachine.world = World()
    CouncilMachine.depth = boa_env.Depth()
    CouncilMachine.TestCase.settings = boa_env.settings_for()
    CouncilMachine.TestCase().runTest()
    CouncilMachine.depth.check_and_record(record_property, "council", boa_env.EXAMPLES)
