# pragma version ~=0.4.3
"""
@title Council: strict-majority governance of the whole protocol
@license GNU Affero General Public License v3.0 only
@notice Voters vote on actions, an action being a call (target, calldata). The first
        `vote` on an action opens a ballot with the caller's YES; another voter's `vote`
        adds a YES; the same voter calling again flips their vote (YES -> NO -> YES).
        A ballot passes when `2 * yes > voters` (only current voters count) and the YES
        that passes it executes the action in the same transaction; if the action reverts,
        that vote reverts. A NO never executes anything; a ballot that holds a majority
        without having run (voters were removed since) runs on the next YES or on an
        explicit `execute`. Ballots expire after `ballot_lifetime`; a passed or expired
        action can be voted again later as a fresh ballot.
@dev Liveness (SPEC section 2): whatever a minority did before, a strict majority can pass
     any valid action in its next transactions. Each voter may have at most
     `BALLOTS_PER_VOTER` ballots open that they opened, and the open list holds
     `MAX_VOTERS * BALLOTS_PER_VOTER`, so the list is never full for a voter under quota; a
     voter frees quota by withdrawing their own ballot, by it passing, or by anyone closing it
     once expired; removing a voter closes the ballots they opened. Nothing a minority does
     can use up a majority voter's quota, and a ballot whose action fails only holds its
     opener's quota.
     Layout. Each voter holds one of 64 slots; a ballot keeps its YES and NO voters as 64-bit
     masks, so a tally is a popcount, and vote gas does not grow with the number of voters.
     Removing a voter clears their bits from every open ballot (at most 128, a bounded
     loop), so no stale bit exists anywhere and the freed slot can be given to a new voter at
     once: a 64-voter council can replace every voter in one day.
       _slot_of[voter]:  bits 0..7 slot + 1 (0: not a voter) | 8..15 ballots they have open
       _voter_set:       bits 0..63 occupied slots | 192..199 voter count
       _ballot[key]:     bits 0..63 YES mask | 64..127 NO mask | 128..191 expiry
                         | 192..199 opener's slot + 1
       _ballot_meta[key]: bits 0..159 target | 160..191 selector | 192..255 index in _open + 1
     The contract does not use the nonreentrancy pragma because passed actions call back
     into the Council's own governed functions (add/remove voter); those accept only
     `msg.sender == self`, and `vote` and `execute` are `@nonreentrant`.
@custom:security Whatever a majority of voters approves is executed with the Council's
        authority over every protocol contract.
"""


MAX_VOTERS: public(constant(uint256)) = 64
VOTER_SLOTS: constant(uint256) = 64
# A voter's own open ballots; the open list has room for every voter's quota.
BALLOTS_PER_VOTER: public(constant(uint256)) = 2
MAX_OPEN_BALLOTS: public(constant(uint256)) = MAX_VOTERS * BALLOTS_PER_VOTER
MAX_CALLDATA: constant(uint256) = 1024
DEFAULT_BALLOT_LIFETIME: constant(uint256) = 7 * 86400
MIN_BALLOT_LIFETIME: constant(uint256) = 3600
MAX_BALLOT_LIFETIME: constant(uint256) = 90 * 86400

MASK_64: constant(uint256) = 2**64 - 1
MASK_8: constant(uint256) = 2**8 - 1
OPENED_ONE: constant(uint256) = 1 << 8

VOTE_NONE: constant(uint8) = 0
VOTE_YES: constant(uint8) = 1
VOTE_NO: constant(uint8) = 2


struct BallotView:
    key: bytes32
    target: address
    selector: bytes4
    opener: address
    yes: uint256
    no: uint256
    voters: uint256
    expires_at: uint256
    expired: bool


# @dev voter -> slot index + 1 (bits 0..7) | ballots the voter opened that are open (8..15).
_slot_of: HashMap[address, uint256]

# @dev slot -> voter.
_voter_at: address[VOTER_SLOTS]

# @dev Current voters: bits 0..63 the occupied slots, bits 192..199 the voter count.
_voter_set: uint256

# @dev How long a new ballot stays open.
ballot_lifetime: public(uint256)

# @dev action key -> YES mask (0..63) | NO mask (64..127) | expiry (128..191)
#      | opener's slot + 1 (192..199).
_ballot: HashMap[bytes32, uint256]

# @dev action key -> target (bits 0..159) | selector (160..191) | index in `_open` + 1 (192..).
_ballot_meta: HashMap[bytes32, uint256]

# @dev Keys of the open (possibly expired, not yet cleaned) ballots.
_open: DynArray[bytes32, MAX_OPEN_BALLOTS]


event VoterAdded:
    voter: indexed(address)
    voters: uint256


event VoterRemoved:
    voter: indexed(address)
    voters: uint256


event BallotLifetimeSet:
    lifetime: uint256


event BallotOpened:
    key: indexed(bytes32)
    target: indexed(address)
    voter: indexed(address)
    data: Bytes[MAX_CALLDATA]
    expires_at: uint256


event Voted:
    key: indexed(bytes32)
    voter: indexed(address)
    yes: uint256
    voters: uint256


event VoteFlipped:
    key: indexed(bytes32)
    voter: indexed(address)
    support: bool
    yes: uint256
    voters: uint256


event BallotPassed:
    key: indexed(bytes32)
    target: indexed(address)
    yes: uint256
    voters: uint256


event BallotExpired:
    key: indexed(bytes32)


event BallotWithdrawn:
    key: indexed(bytes32)
    opener: indexed(address)


@deploy
def __init__():
    """
    @notice The deployer is the first voter.
    """
    self.ballot_lifetime = DEFAULT_BALLOT_LIFETIME
    self._add_voter(msg.sender)


@external
@nonreentrant
def vote(target: address, data: Bytes[MAX_CALLDATA]) -> bool:
    """
    @notice Votes on the action `target.call(data)`: opens its ballot with a YES, adds a YES,
            or flips the caller's earlier vote. A YES that gives the ballot a strict majority
            of the current voters executes the action; a NO never does.
    @dev Opening a ballot uses one of the caller's `BALLOTS_PER_VOTER`.
    @param target The contract to call.
    @param data The calldata (selector and ABI-encoded arguments).
    @return True if this vote passed and executed the action.
    """
    who: uint256 = self._slot_of[msg.sender]
    slot: uint256 = who & MASK_8
    assert slot != 0, "council: not a voter"
    assert target != empty(address), "council: zero target"
    assert len(data) >= 4, "council: no selector"
    bit: uint256 = 1 << (slot - 1)
    key: bytes32 = keccak256(concat(convert(target, bytes20), data))

    voter_set: uint256 = self._voter_set
    voters: uint256 = voter_set >> 192
    ballot: uint256 = self._ballot[key]
    meta: uint256 = self._ballot_meta[key]
    support: bool = True

    if meta != 0 and (ballot >> 128) & MASK_64 <= block.timestamp:
        # Expired: drop it, then this vote opens a fresh ballot.
        self._close(key, meta, ballot)
        log BallotExpired(key=key)
        meta = 0
        who = self._slot_of[msg.sender]

    if meta == 0:
        assert (who >> 8) & MASK_8 < BALLOTS_PER_VOTER, "council: ballot quota used"
        # Cannot fail while every voter is under quota; kept as the list's own guard.
        assert len(self._open) < MAX_OPEN_BALLOTS, "council: too many open ballots"
        self._slot_of[msg.sender] = who + OPENED_ONE
        expires_at: uint256 = block.timestamp + self.ballot_lifetime
        self._open.append(key)
        self._ballot_meta[key] = (
            convert(target, uint256)
            | (convert(convert(slice(data, 0, 4), bytes4), uint256) << 160)
            | (len(self._open) << 192)
        )
        log BallotOpened(key=key, target=target, voter=msg.sender, data=data, expires_at=expires_at)
        ballot = bit | (expires_at << 128) | (slot << 192)
    else:
        yes_mask: uint256 = ballot & MASK_64
        no_mask: uint256 = (ballot >> 64) & MASK_64
        support = yes_mask & bit == 0
        if support:
            yes_mask |= bit
        else:
            yes_mask ^= bit
        tally: uint256 = self._popcount(yes_mask & voter_set)
        if no_mask & bit != 0 or not support:
            # The same voter again: YES -> NO or NO -> YES.
            no_mask ^= bit
            log VoteFlipped(key=key, voter=msg.sender, support=support, yes=tally, voters=voters)
        else:
            log Voted(key=key, voter=msg.sender, yes=tally, voters=voters)
        ballot = yes_mask | (no_mask << 64) | ((ballot >> 128) << 128)

    yes: uint256 = self._popcount(ballot & voter_set & MASK_64)
    if support and 2 * yes > voters:
        self._pass(key, target, data, ballot, yes, voters)
        return True

    self._ballot[key] = ballot
    return False


@external
@nonreentrant
def execute(target: address, data: Bytes[MAX_CALLDATA]) -> bool:
    """
    @notice Executes an open, unexpired ballot that holds a strict majority of the current
            voters without having run (voters were removed after its YES votes). Any voter.
    @param target The ballot's contract.
    @param data The ballot's calldata.
    @return True (reverts otherwise).
    """
    assert self._slot_of[msg.sender] & MASK_8 != 0, "council: not a voter"
    key: bytes32 = keccak256(concat(convert(target, bytes20), data))
    assert self._ballot_meta[key] != 0, "council: no such ballot"
    ballot: uint256 = self._ballot[key]
    assert (ballot >> 128) & MASK_64 > block.timestamp, "council: ballot expired"
    voter_set: uint256 = self._voter_set
    voters: uint256 = voter_set >> 192
    yes: uint256 = self._popcount(ballot & voter_set & MASK_64)
    assert 2 * yes > voters, "council: no majority"
    self._pass(key, target, data, ballot, yes, voters)
    return True


@external
def withdraw(key: bytes32):
    """
    @notice Withdraws a ballot the caller opened (frees one of their ballots).
    @param key The ballot's action key.
    """
    meta: uint256 = self._ballot_meta[key]
    assert meta != 0, "council: no such ballot"
    ballot: uint256 = self._ballot[key]
    slot: uint256 = self._slot_of[msg.sender] & MASK_8
    assert slot != 0 and (ballot >> 192) & MASK_8 == slot, "council: not the opener"
    self._close(key, meta, ballot)
    log BallotWithdrawn(key=key, opener=msg.sender)


@external
def close_expired(key: bytes32):
    """
    @notice Removes an expired ballot from the open list (freeing its opener's quota);
            anyone may call.
    @param key The ballot's action key.
    """
    meta: uint256 = self._ballot_meta[key]
    assert meta != 0, "council: no such ballot"
    ballot: uint256 = self._ballot[key]
    assert (ballot >> 128) & MASK_64 <= block.timestamp, "council: ballot not expired"
    self._close(key, meta, ballot)
    log BallotExpired(key=key)


@external
def add_voter(voter: address):
    """
    @notice Adds a voter. Governed: only through a passed vote.
    @param voter The new voter.
    """
    self._only_self()
    self._add_voter(voter)


@external
def remove_voter(voter: address):
    """
    @notice Removes a voter (never the last one): their votes leave every open ballot and the
            ballots they opened are withdrawn. Governed: only through a passed vote.
    @dev Bounded: at most `MAX_OPEN_BALLOTS` iterations. The slot is free again at once.
    @param voter The voter to remove.
    """
    self._only_self()
    slot: uint256 = self._slot_of[voter] & MASK_8
    assert slot != 0, "council: not a voter"
    voter_set: uint256 = self._voter_set
    voters: uint256 = voter_set >> 192
    assert voters > 1, "council: last voter"
    bit: uint256 = 1 << (slot - 1)
    votes: uint256 = bit | (bit << 64)
    i: uint256 = 0
    for _: uint256 in range(MAX_OPEN_BALLOTS):
        if i >= len(self._open):
            break
        key: bytes32 = self._open[i]
        ballot: uint256 = self._ballot[key]
        if (ballot >> 192) & MASK_8 == slot:
            # Swap-and-pop puts another ballot at index i: look at i again.
            self._close(key, self._ballot_meta[key], ballot)
            log BallotWithdrawn(key=key, opener=voter)
            continue
        if ballot & votes != 0:
            self._ballot[key] = ballot & ~votes
        i += 1
    index: uint256 = slot - 1
    self._slot_of[voter] = 0
    self._voter_at[index] = empty(address)
    voters -= 1
    self._voter_set = ((voter_set & MASK_64) ^ bit) | (voters << 192)
    log VoterRemoved(voter=voter, voters=voters)


@external
def set_ballot_lifetime(lifetime: uint256):
    """
    @notice Sets how long new ballots stay open. Governed: only through a passed vote.
    @param lifetime Seconds, between one hour and 90 days.
    """
    self._only_self()
    assert lifetime >= MIN_BALLOT_LIFETIME and lifetime <= MAX_BALLOT_LIFETIME, (
        "council: lifetime out of range"
    )
    self.ballot_lifetime = lifetime
    log BallotLifetimeSet(lifetime=lifetime)


@view
@external
def voters() -> DynArray[address, MAX_VOTERS]:
    """
    @notice The current voters.
    @return The voters, in slot order.
    """
    result: DynArray[address, MAX_VOTERS] = []
    mask: uint256 = self._voter_set & MASK_64
    for i: uint256 in range(VOTER_SLOTS):
        if mask == 0:
            break
        if mask & 1 != 0:
            result.append(self._voter_at[i])
        mask >>= 1
    return result


@view
@external
def voter_count() -> uint256:
    """
    @notice The number of current voters.
    @return The count.
    """
    return self._voter_set >> 192


@view
@external
def is_voter(account: address) -> bool:
    """
    @notice Whether `account` is a current voter.
    @param account The account.
    @return True for a voter.
    """
    return self._slot_of[account] & MASK_8 != 0


@view
@external
def ballots_opened(voter: address) -> uint256:
    """
    @notice How many open ballots `voter` opened (at most `BALLOTS_PER_VOTER`).
    @param voter The voter.
    @return The count.
    """
    return (self._slot_of[voter] >> 8) & MASK_8


@pure
@external
def action_key(target: address, data: Bytes[MAX_CALLDATA]) -> bytes32:
    """
    @notice The ballot key of the action `target.call(data)`.
    @param target The contract.
    @param data The calldata.
    @return keccak256(target ++ data).
    """
    return keccak256(concat(convert(target, bytes20), data))


@view
@external
def ballot(key: bytes32) -> BallotView:
    """
    @notice One ballot with its tally (zeros if none is open).
    @param key The action key.
    @return The ballot.
    """
    return self._view(key)


@view
@external
def open_ballots() -> DynArray[BallotView, MAX_OPEN_BALLOTS]:
    """
    @notice Every open ballot (including expired ones nobody cleaned yet) with its tally.
    @return The ballots.
    """
    result: DynArray[BallotView, MAX_OPEN_BALLOTS] = []
    for key: bytes32 in self._open:
        result.append(self._view(key))
    return result


@view
@external
def vote_of(key: bytes32, voter: address) -> uint8:
    """
    @notice A voter's vote on an open ballot: 0 none, 1 YES, 2 NO.
    @param key The action key.
    @param voter The voter.
    @return The vote.
    """
    slot: uint256 = self._slot_of[voter] & MASK_8
    if slot == 0 or self._ballot_meta[key] == 0:
        return VOTE_NONE
    bit: uint256 = 1 << (slot - 1)
    ballot: uint256 = self._ballot[key]
    if ballot & bit != 0:
        return VOTE_YES
    if (ballot >> 64) & bit != 0:
        return VOTE_NO
    return VOTE_NONE


@internal
def _only_self():
    assert msg.sender == self, "council: only by vote"


@internal
def _add_voter(voter: address):
    assert voter != empty(address), "council: zero voter"
    assert self._slot_of[voter] == 0, "council: already a voter"
    voter_set: uint256 = self._voter_set
    voters: uint256 = voter_set >> 192
    assert voters < MAX_VOTERS, "council: too many voters"
    occupied: uint256 = voter_set & MASK_64
    # A free slot exists: fewer than 64 voters hold fewer than 64 slots.
    index: uint256 = 0
    for i: uint256 in range(VOTER_SLOTS):
        if occupied & (1 << i) == 0:
            index = i
            break
    self._slot_of[voter] = index + 1
    self._voter_at[index] = voter
    voters += 1
    self._voter_set = (occupied | (1 << index)) | (voters << 192)
    log VoterAdded(voter=voter, voters=voters)


@internal
def _pass(
    key: bytes32,
    target: address,
    data: Bytes[MAX_CALLDATA],
    ballot: uint256,
    yes: uint256,
    voters: uint256,
):
    self._close(key, self._ballot_meta[key], ballot)
    log BallotPassed(key=key, target=target, yes=yes, voters=voters)
    # Reverts (with the target's reason) if the action fails, undoing this vote.
    raw_call(target, data, max_outsize=0)


@internal
def _close(key: bytes32, meta: uint256, ballot: uint256):
    # Swap-and-pop the key out of the open list, give the opener their quota back, clear it.
    index: uint256 = (meta >> 192) - 1
    last: bytes32 = self._open.pop()
    if last != key:
        self._open[index] = last
        last_meta: uint256 = self._ballot_meta[last]
        self._ballot_meta[last] = (last_meta & (2**192 - 1)) | ((index + 1) << 192)
    opener: address = self._voter_at[((ballot >> 192) & MASK_8) - 1]
    self._slot_of[opener] -= OPENED_ONE
    self._ballot_meta[key] = 0
    self._ballot[key] = 0


@view
@internal
def _view(key: bytes32) -> BallotView:
    meta: uint256 = self._ballot_meta[key]
    if meta == 0:
        return empty(BallotView)
    ballot: uint256 = self._ballot[key]
    voter_set: uint256 = self._voter_set
    expires_at: uint256 = (ballot >> 128) & MASK_64
    return BallotView(
        key=key,
        target=convert(convert(meta & (2**160 - 1), uint160), address),
        selector=convert(convert((meta >> 160) & (2**32 - 1), uint32), bytes4),
        opener=self._voter_at[((ballot >> 192) & MASK_8) - 1],
        yes=self._popcount(ballot & voter_set & MASK_64),
        no=self._popcount((ballot >> 64) & voter_set & MASK_64),
        voters=voter_set >> 192,
        expires_at=expires_at,
        expired=expires_at <= block.timestamp,
    )


@pure
@internal
def _popcount(x: uint256) -> uint256:
    # Kernighan: one iteration per set bit, at most 64 voters' bits are ever set.
    n: uint256 = 0
    v: uint256 = x & MASK_64
    for i: uint256 in range(VOTER_SLOTS):
        if v == 0:
            break
        v &= v - 1
        n += 1
    return n
