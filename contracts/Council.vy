# pragma version ~=0.4.3
"""
@title Council: strict-majority governance of the whole protocol
@license GNU Affero General Public License v3.0 only
@notice Voters vote on actions, an action being a call (target, calldata). The first
        `vote` on an action opens a ballot with the caller's YES; another voter's `vote`
        adds a YES; the same voter calling again flips their vote (YES -> NO -> YES).
        A ballot passes when `2 * yes > voters` (only current voters count) and the vote
        that passes it executes the action in the same transaction; if the action reverts,
        that vote reverts. Ballots expire after `ballot_lifetime`; a passed or expired
        action can be voted again later as a fresh ballot.
@dev Layout. Each voter holds one of 96 slots; a ballot keeps its YES and NO voters as
     96-bit masks, so a tally is one AND with the current voter mask and a popcount, and
     removing a voter removes their weight from every open ballot at once. A freed slot is
     reused only after the longest ballot lifetime ever configured has passed, so a stale
     bit can never count for a new voter (64 voters at most, so 32 slots absorb removals).
     A ballot's YES mask, NO mask and expiry share one storage slot.
     The contract does not use the nonreentrancy pragma because passed actions call back
     into the Council's own governed functions (add/remove voter); those accept only
     `msg.sender == self`, and `vote` itself is `@nonreentrant`.
@custom:security Whatever a majority of voters approves is executed with the Council's
        authority over every protocol contract.
"""


MAX_VOTERS: public(constant(uint256)) = 64
VOTER_SLOTS: constant(uint256) = 96
MAX_OPEN_BALLOTS: public(constant(uint256)) = 64
MAX_CALLDATA: constant(uint256) = 1024
DEFAULT_BALLOT_LIFETIME: constant(uint256) = 7 * 86400
MIN_BALLOT_LIFETIME: constant(uint256) = 3600
MAX_BALLOT_LIFETIME: constant(uint256) = 90 * 86400

MASK_96: constant(uint256) = 2**96 - 1
MASK_64: constant(uint256) = 2**64 - 1

VOTE_NONE: constant(uint8) = 0
VOTE_YES: constant(uint8) = 1
VOTE_NO: constant(uint8) = 2


struct BallotView:
    key: bytes32
    target: address
    selector: bytes4
    yes: uint256
    no: uint256
    voters: uint256
    expires_at: uint256
    expired: bool


# @dev voter -> slot index + 1 (0: not a voter).
_slot_of: HashMap[address, uint256]

# @dev slot -> voter.
_voter_at: address[VOTER_SLOTS]

# @dev slot -> earliest time the slot may be given to a new voter.
_slot_free_at: uint256[VOTER_SLOTS]

# @dev Current voters: bits 0..95 the occupied slots, bits 192..199 the voter count.
_voter_set: uint256

# @dev How long a ballot stays open, and the longest value it ever had.
ballot_lifetime: public(uint256)
_longest_lifetime: uint256

# @dev action key -> YES mask (bits 0..95) | NO mask (96..191) | expiry (192..255).
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


@deploy
def __init__():
    """
    @notice The deployer is the first voter.
    """
    self.ballot_lifetime = DEFAULT_BALLOT_LIFETIME
    self._longest_lifetime = DEFAULT_BALLOT_LIFETIME
    self._add_voter(msg.sender)


@external
@nonreentrant
def vote(target: address, data: Bytes[MAX_CALLDATA]) -> bool:
    """
    @notice Votes on the action `target.call(data)`: opens its ballot with a YES, adds a YES,
            or flips the caller's earlier vote. Executes the action when it reaches a strict
            majority of the current voters.
    @param target The contract to call.
    @param data The calldata (selector and ABI-encoded arguments).
    @return True if this vote passed and executed the action.
    """
    slot: uint256 = self._slot_of[msg.sender]
    assert slot != 0, "council: not a voter"
    assert target != empty(address), "council: zero target"
    assert len(data) >= 4, "council: no selector"
    bit: uint256 = 1 << (slot - 1)
    key: bytes32 = keccak256(concat(convert(target, bytes20), data))

    voter_set: uint256 = self._voter_set
    voters: uint256 = voter_set >> 192
    ballot: uint256 = self._ballot[key]
    meta: uint256 = self._ballot_meta[key]
    yes_mask: uint256 = 0

    if meta != 0 and ballot >> 192 <= block.timestamp:
        # Expired: drop it, then this vote opens a fresh ballot.
        self._close(key, meta)
        log BallotExpired(key=key)
        meta = 0

    if meta == 0:
        assert len(self._open) < MAX_OPEN_BALLOTS, "council: too many open ballots"
        expires_at: uint256 = block.timestamp + self.ballot_lifetime
        yes_mask = bit
        self._open.append(key)
        self._ballot_meta[key] = (
            convert(target, uint256)
            | (convert(convert(slice(data, 0, 4), bytes4), uint256) << 160)
            | (len(self._open) << 192)
        )
        log BallotOpened(key=key, target=target, voter=msg.sender, data=data, expires_at=expires_at)
        ballot = yes_mask | (expires_at << 192)
    else:
        yes_mask = ballot & MASK_96
        no_mask: uint256 = (ballot >> 96) & MASK_96
        support: bool = yes_mask & bit == 0
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
        ballot = yes_mask | (no_mask << 96) | ((ballot >> 192) << 192)

    yes: uint256 = self._popcount(yes_mask & voter_set)
    if 2 * yes > voters:
        self._close(key, self._ballot_meta[key])
        log BallotPassed(key=key, target=target, yes=yes, voters=voters)
        # Reverts (with the target's reason) if the action fails, undoing this vote.
        raw_call(target, data, max_outsize=0)
        return True

    self._ballot[key] = ballot
    return False


@external
def close_expired(key: bytes32):
    """
    @notice Removes an expired ballot from the open list; anyone may call.
    @param key The ballot's action key.
    """
    meta: uint256 = self._ballot_meta[key]
    assert meta != 0, "council: no such ballot"
    assert self._ballot[key] >> 192 <= block.timestamp, "council: ballot not expired"
    self._close(key, meta)
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
    @notice Removes a voter (never the last one); their YES stops counting on every open
            ballot. Governed: only through a passed vote.
    @param voter The voter to remove.
    """
    self._only_self()
    slot: uint256 = self._slot_of[voter]
    assert slot != 0, "council: not a voter"
    voter_set: uint256 = self._voter_set
    voters: uint256 = voter_set >> 192
    assert voters > 1, "council: last voter"
    index: uint256 = slot - 1
    self._slot_of[voter] = 0
    self._voter_at[index] = empty(address)
    self._slot_free_at[index] = block.timestamp + self._longest_lifetime
    voters -= 1
    self._voter_set = ((voter_set & MASK_96) ^ (1 << index)) | (voters << 192)
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
    self._longest_lifetime = max(self._longest_lifetime, lifetime)
    log BallotLifetimeSet(lifetime=lifetime)


@view
@external
def voters() -> DynArray[address, MAX_VOTERS]:
    """
    @notice The current voters.
    @return The voters, in slot order.
    """
    result: DynArray[address, MAX_VOTERS] = []
    mask: uint256 = self._voter_set & MASK_96
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
    return self._slot_of[account] != 0


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
    slot: uint256 = self._slot_of[voter]
    if slot == 0 or self._ballot_meta[key] == 0:
        return VOTE_NONE
    bit: uint256 = 1 << (slot - 1)
    ballot: uint256 = self._ballot[key]
    if ballot & bit != 0:
        return VOTE_YES
    if (ballot >> 96) & bit != 0:
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
    occupied: uint256 = voter_set & MASK_96
    index: uint256 = max_value(uint256)
    for i: uint256 in range(VOTER_SLOTS):
        if occupied & (1 << i) == 0 and self._slot_free_at[i] <= block.timestamp:
            index = i
            break
    assert index != max_value(uint256), "council: no free voter slot"
    self._slot_of[voter] = index + 1
    self._voter_at[index] = voter
    voters += 1
    self._voter_set = (occupied | (1 << index)) | (voters << 192)
    log VoterAdded(voter=voter, voters=voters)


@internal
def _close(key: bytes32, meta: uint256):
    # Swap-and-pop the key out of the open list, then clear the ballot.
    index: uint256 = (meta >> 192) - 1
    last: bytes32 = self._open.pop()
    if last != key:
        self._open[index] = last
        last_meta: uint256 = self._ballot_meta[last]
        self._ballot_meta[last] = (last_meta & (2**192 - 1)) | ((index + 1) << 192)
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
    expires_at: uint256 = ballot >> 192
    return BallotView(
        key=key,
        target=convert(convert(meta & (2**160 - 1), uint160), address),
        selector=convert(convert((meta >> 160) & (2**32 - 1), uint32), bytes4),
        yes=self._popcount(ballot & voter_set),
        no=self._popcount((ballot >> 96) & voter_set),
        voters=voter_set >> 192,
        expires_at=expires_at,
        expired=expires_at <= block.timestamp,
    )


@pure
@internal
def _popcount(x: uint256) -> uint256:
    # Kernighan: one iteration per set bit, at most 64 voters' bits are ever set.
    n: uint256 = 0
    v: uint256 = x & MASK_96
    for i: uint256 in range(VOTER_SLOTS):
        if v == 0:
            break
        v &= v - 1
        n += 1
    return n
