# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Bridge: lock/release and mint/burn between two community chains (SPEC section 6)
@license GNU Affero General Public License v3.0 only
@notice One Bridge per chain, each configured with its peer (the other chain's id and Bridge).
        A token listed by the Council is either a home token here (`lock` holds it, `unlock`
        releases it) or a `WrappedToken` minted only by this bridge (`unlock` mints it, `burn`
        destroys it: the way back home). Every transfer is a `Transfer` whose EIP-712 struct
        hash is its id; the id binds source chain, source bridge, nonce, destination chain,
        sender, recipient, source-chain token, amount and lock time.
        Relayers attest with EIP-712 signatures over (id, action): UNLOCK and CANCEL on the
        destination, DELIVERED and REFUND on the source. A call needs at least M signatures
        of distinct members of the current set, signers strictly ascending.
        Lifecycle: source `lock`/`burn` (pending) -> destination `unlock` -> source
        `mark_transferred`; or, for a transfer nobody completes, destination `cancel` (after
        `REFUND_DELAY`, or at once when the recipient asks) -> source `refund` to the sender.
        The destination's processed bit makes unlock and cancel exclusive; the source's
        settled bit makes mark_transferred and refund exclusive (docs/bridge.md).
@dev Layout (why packed: lock, burn and unlock each touch few cold slots; docs/gas.md).
       _peer:            bits 0..159 peer Bridge | 160..223 peer chain id | 224..247
                         relayer-set epoch | 248..253 threshold M | 255 paused (one word
                         for every check an attested call makes before the signatures)
       _member[a]:       the epoch of the set `a` belongs to (valid iff == current epoch,
                         so a new set invalidates the old one without clearing it)
       _token[local]:    bits 0..159 peer-chain token | 160 home flag | 161 listed flag
       _inbound[peer]:   bits 0..159 local token | 160 home flag | 161 listed flag (the same
                         flags as `_token[local]`, kept equal)
       _route[k]:        k = keccak(peer chain, peer Bridge, peer token): `_inbound[peer]`'s
                         bits 0..161 | 224..247 epoch | 248..253 M | 255 paused (`_peer`'s
                         bits, at the same places); every governed write keeps it equal, so
                         unlock and cancel read one configuration word, and a transfer from
                         any other chain or Bridge finds no route
       _limit[t][d]:     bits 0..95 capacity | 96..159 refill per second | 160..255 max per
                         transfer (d: 0 outbound, 1 inbound)
       _bucket[t][0]:    (outbound) bits 0..95 level | 96..135 last update | 136..175 next
                         nonce | 176..239 peer chain id | 253 paused | 254 home flag | 255
                         listed flag (the flags of `_token[t]`, the peer chain and the pause
                         of `_peer`, kept equal by every governed write, so lock and burn
                         read no other configuration word)
       _bucket[t][1]:    (inbound) bits 0..95 level | 96..135 last update | 160..223 the
                         processed bits of nonces 64 * k .. 64 * k + 63 | 224..255 k (the
                         processed cache: unlock writes its bit and the bucket in one word)
       _settled[t][w]:   bit i: outbound nonce 256 * w + i was completed or refunded (a
                         transfer is pending iff its nonce < the next nonce and its bit is
                         clear, so lock and burn write no bitmap)
       _processed[t][w]: bit i: inbound nonce 256 * w + i was unlocked or cancelled, for
                         every nonce outside the cached window (the window is flushed here
                         when a later window replaces it)
     Nonces count per token (the id binds the token, so ids stay unique); the bitmaps keyed
     by nonce make replay protection cost one warm-able word per 256 transfers instead of a
     fresh slot per id.
@custom:security Trust: M of the N relayers can move up to the inbound rate limit per token
        (unlock and refund both draw on it); fewer than M can do nothing. Only the Council
        (`governance`, immutable) changes the relayer set, M, the peer, the token list, the
        limits and the pause. No call carried by a message is ever executed: the bridge only
        transfers or mints listed tokens.
"""


from ethereum.ercs import IERC20
from snekmate.utils import eip712_domain_separator as eip712


interface IWrapped:
    def mint(to: address, amount: uint256): nonpayable
    def bridge_burn(owner: address, amount: uint256): nonpayable
    def bridge() -> address: view


initializes: eip712


exports: eip712.eip712Domain


struct Transfer:
    source_chain: uint256
    source_bridge: address
    nonce: uint256
    dest_chain: uint256
    sender: address
    recipient: address
    token: address
    amount: uint256
    timestamp: uint256


struct Signature:
    v: uint8
    r: bytes32
    s: bytes32


struct TokenView:
    peer_token: address
    home: bool
    listed: bool


struct LimitView:
    capacity: uint256
    refill_per_second: uint256
    max_per_transfer: uint256
    available: uint256


# Bounds: the relayer set, a page of `locked_transfers`.
MAX_RELAYERS: public(constant(uint256)) = 32
MAX_PAGE: public(constant(uint256)) = 256
# Tokens ever listed: set_peer and set_paused rewrite each one's outbound word.
MAX_TOKENS: public(constant(uint256)) = 32
# A destination transfer can be cancelled by anyone with relayer attestations this long
# after it was sent (its recipient can cancel it earlier).
REFUND_DELAY: public(constant(uint256)) = 7 * 86400

OUTBOUND: public(constant(uint256)) = 0
INBOUND: public(constant(uint256)) = 1

ACTION_UNLOCK: public(constant(uint8)) = 1
ACTION_CANCEL: public(constant(uint8)) = 2
ACTION_DELIVERED: public(constant(uint8)) = 3
ACTION_REFUND: public(constant(uint8)) = 4

TRANSFER_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Transfer(uint256 source_chain,address source_bridge,uint256 nonce,uint256 dest_chain,"
    "address sender,address recipient,address token,uint256 amount,uint256 timestamp)"
)
ATTESTATION_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Attestation(bytes32 id,uint8 action)"
)

# secp256k1 n / 2: a larger s is the malleable twin of a valid signature.
HALF_N: constant(uint256) = (
    57896044618658097711785492504343953926418782139537452191302581570759080747168
)
MASK_64: constant(uint256) = 2**64 - 1
MASK_96: constant(uint256) = 2**96 - 1
MASK_160: constant(uint256) = 2**160 - 1
MASK_32: constant(uint256) = 2**32 - 1
MASK_40: constant(uint256) = 2**40 - 1
# A bucket word: the last update (40 bits) from TIME_SHIFT; the fields above it from
# KEEP_SHIFT (the outbound nonce, or the inbound processed cache) are not the bucket's.
TIME_SHIFT: constant(uint256) = 96
KEEP_SHIFT: constant(uint256) = 136
NONCE_SHIFT: constant(uint256) = 136
# The copies of `_peer`'s peer chain and pause in each outbound word.
OUT_CHAIN_SHIFT: constant(uint256) = 176
OUT_PAUSED: constant(uint256) = 1 << 253
OUT_SYNCED: constant(uint256) = (MASK_64 << OUT_CHAIN_SHIFT) | OUT_PAUSED
# The processed cache in a token's inbound bucket word: 64 bits from CACHE_SHIFT, the
# window's index (nonce >> 6) from CACHE_INDEX_SHIFT.
CACHE_SHIFT: constant(uint256) = 160
CACHE_INDEX_SHIFT: constant(uint256) = 224
PAUSED_FLAG: constant(uint256) = 1 << 255
# The relayer set's epoch and M, in the `_peer` word.
EPOCH_SHIFT: constant(uint256) = 224
MASK_EPOCH: constant(uint256) = 2**24 - 1
THRESHOLD_SHIFT: constant(uint256) = 248
SET_BITS: constant(uint256) = (2**30 - 1) << EPOCH_SHIFT
# The peer chain and Bridge in the `_peer` word.
PEER_BITS: constant(uint256) = 2**224 - 1
# A token's flags in its outbound bucket word.
BUCKET_HOME: constant(uint256) = 1 << 254
BUCKET_LISTED: constant(uint256) = 1 << 255
BUCKET_FLAGS: constant(uint256) = BUCKET_HOME | BUCKET_LISTED
FLAGS: constant(uint256) = HOME_FLAG | LISTED_FLAG
HOME_FLAG: constant(uint256) = 1 << 160
LISTED_FLAG: constant(uint256) = 1 << 161


# @dev The Council: the only account that configures the bridge.
governance: public(immutable(address))

# @dev This chain's identity in transfer ids (the deploy script passes `chain.id`).
local_chain: public(immutable(uint256))

# @dev The other chain and its Bridge, the relayer set's epoch and M, and the pause (stops
#      lock, burn, unlock and refund; never the Council's calls): one word, read once per
#      transfer (see the layout drawing).
_peer: uint256

# @dev Relayer set: each member's epoch (current iff equal to the epoch in `_peer`).
_member: HashMap[address, uint256]
_relayers: DynArray[address, MAX_RELAYERS]
# @dev Every token ever listed (the outbound words the peer chain and the pause are copied to).
_tokens: DynArray[address, MAX_TOKENS]

_token: HashMap[address, uint256]
# @dev Peer-chain token -> the local token it maps to, with its flags.
_inbound: HashMap[address, uint256]
# @dev The hot copy of `_inbound` for unlock and cancel, keyed by (peer chain, peer Bridge,
#      peer token), with the set's epoch and M and the pause of `_peer` (see the layout).
_route: HashMap[bytes32, uint256]
_limit: HashMap[address, uint256[2]]
_bucket: HashMap[address, uint256[2]]
_settled: HashMap[address, HashMap[uint256, uint256]]
_processed: HashMap[address, HashMap[uint256, uint256]]


event TransferSent:
    id: indexed(bytes32)
    token: indexed(address)
    nonce: indexed(uint256)
    sender: address
    recipient: address
    amount: uint256
    dest_chain: uint256
    timestamp: uint256


event TransferUnlocked:
    id: indexed(bytes32)
    token: indexed(address)
    recipient: indexed(address)
    nonce: uint256
    amount: uint256


event TransferCancelled:
    id: indexed(bytes32)
    token: indexed(address)
    nonce: uint256


event TransferCompleted:
    id: indexed(bytes32)
    token: indexed(address)
    nonce: uint256


event TransferRefunded:
    id: indexed(bytes32)
    token: indexed(address)
    sender: indexed(address)
    nonce: uint256
    amount: uint256


event RelayersSet:
    epoch: uint256
    relayers: DynArray[address, MAX_RELAYERS]
    threshold: uint256


event PeerSet:
    chain_id: uint256
    bridge: indexed(address)


event TokenListed:
    token: indexed(address)
    peer_token: indexed(address)
    home: bool


event TokenDelisted:
    token: indexed(address)


event LimitSet:
    token: indexed(address)
    direction: uint256
    capacity: uint256
    refill_per_second: uint256
    max_per_transfer: uint256


event PausedSet:
    paused: bool


@deploy
def __init__(governance_: address, local_chain_: uint256):
    """
    @notice Deploys an unconfigured, paused-by-construction bridge: no peer, no relayer set,
            no token; every transfer reverts until the Council configures them.
    @param governance_ The Council.
    @param local_chain_ This chain's id as used in transfer ids (normally `chain.id`).
    """
    assert governance_ != empty(address), "bridge: zero governance"
    assert local_chain_ != 0, "bridge: zero chain id"
    eip712.__init__("PowerHive Bridge", "1")
    governance = governance_
    local_chain = local_chain_


@external
def lock(token: address, amount: uint256, dest_chain: uint256, recipient: address) -> bytes32:
    """
    @notice Locks `amount` of a home token here for `recipient` on the peer chain.
    @dev The caller approves this bridge first. Standard ERC-20s only (the Council lists
         tokens; a fee-on-transfer token would make the locked balance short).
    @param token A listed home token.
    @param amount Amount in base units.
    @param dest_chain The peer chain's id.
    @param recipient The receiver on the peer chain.
    @return The transfer id.
    """
    bucket: uint256 = self._listed_bucket(token)
    assert bucket & BUCKET_HOME != 0, "bridge: not a home token"
    id: bytes32 = self._send(token, bucket, amount, dest_chain, recipient)
    assert extcall IERC20(token).transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), "bridge: transfer failed"
    return id


@external
def burn(token: address, amount: uint256, dest_chain: uint256, recipient: address) -> bytes32:
    """
    @notice Burns `amount` of the caller's wrapped tokens; the peer chain releases the home
            tokens to `recipient`.
    @param token A listed wrapped token (minted by this bridge).
    @param amount Amount in base units.
    @param dest_chain The peer (home) chain's id.
    @param recipient The receiver on the home chain.
    @return The transfer id.
    """
    bucket: uint256 = self._listed_bucket(token)
    assert bucket & BUCKET_HOME == 0, "bridge: not a wrapped token"
    id: bytes32 = self._send(token, bucket, amount, dest_chain, recipient)
    # Listed only with code (and post-cancun code cannot vanish): no EXTCODESIZE.
    extcall IWrapped(token).bridge_burn(msg.sender, amount, skip_contract_check=True)
    return id


@external
def unlock(transfer: Transfer, signatures: DynArray[Signature, MAX_RELAYERS]):
    """
    @notice Completes a transfer sent to this chain: releases the home token, or mints the
            wrapped token, to the recipient. Anyone may submit it with the attestations.
    @param transfer The transfer, as in the source chain's `TransferSent` event.
    @param signatures At least M UNLOCK attestations over the transfer id, signers ascending.
    @dev The hot path, written out: the same checks as `_check_inbound`, `_check_signatures`,
         `_draw` and `_deliver` in the same order, without their internal calls (each would
         copy the transfer or the signatures once more and return through memory).
    """
    route: uint256 = self._route[
        keccak256(abi_encode(transfer.source_chain, transfer.source_bridge, transfer.token))
    ]
    if route == 0:
        self._refuse_inbound(transfer, True)
    assert route & PAUSED_FLAG == 0, "bridge: paused"
    assert transfer.dest_chain == local_chain, "bridge: wrong destination"
    amount: uint256 = transfer.amount
    assert amount != 0, "bridge: zero amount"
    local: address = convert(convert(route & MASK_160, uint160), address)
    nonce: uint256 = transfer.nonce
    bucket: uint256 = self._bucket[local][INBOUND]
    cached: bool = nonce >> 6 == bucket >> CACHE_INDEX_SHIFT
    if cached:
        bit: uint256 = 1 << (CACHE_SHIFT + (nonce & 63))
        assert bucket & bit == 0, "bridge: already processed"
        bucket |= bit
    else:
        assert not self._is_processed(local, nonce, bucket), "bridge: already processed"
    assert route & LISTED_FLAG != 0, "bridge: token not listed"
    recipient: address = transfer.recipient
    assert recipient != empty(address), "bridge: zero recipient"
    id: bytes32 = keccak256(
        abi_encode(
            TRANSFER_TYPEHASH,
            transfer.source_chain,
            transfer.source_bridge,
            nonce,
            transfer.dest_chain,
            transfer.sender,
            recipient,
            transfer.token,
            amount,
            transfer.timestamp,
        )
    )
    # The signatures, as in `_check_signatures`; the route carries the set's epoch and M
    # (the copies of `_peer`'s).
    threshold: uint256 = (route >> THRESHOLD_SHIFT) & 63
    assert threshold != 0, "bridge: no relayer set"
    assert len(signatures) >= threshold, "bridge: fewer than M signatures"
    epoch: uint256 = (route >> EPOCH_SHIFT) & MASK_EPOCH
    # `_digest(id, ACTION_UNLOCK)`.
    digest: bytes32 = keccak256(
        concat(
            x"1901",
            eip712._domain_separator_v4(),
            keccak256(abi_encode(ATTESTATION_TYPEHASH, id, ACTION_UNLOCK)),
        )
    )
    last: uint256 = 0
    for sig: Signature in signatures:
        assert convert(sig.s, uint256) <= HALF_N, "bridge: malleable signature"
        signer: address = ecrecover(digest, sig.v, sig.r, sig.s)
        assert signer != empty(address), "bridge: bad signature"
        as_int: uint256 = convert(signer, uint256)
        assert as_int > last, "bridge: signers not ascending"
        assert self._member[signer] == epoch, "bridge: signer not a relayer"
        last = as_int
    if not cached:
        bucket = self._mark_processed(local, nonce, bucket)
    # The inbound bucket, as in `_draw`; one write of the word (processed bit and bucket).
    lim: uint256 = self._limit[local][INBOUND]
    assert amount <= lim >> 160, "bridge: over per-transfer max"
    # `_level(lim, bucket)`.
    level: uint256 = min(
        lim & MASK_96,
        unsafe_add(
            bucket & MASK_96,
            unsafe_mul(
                block.timestamp - ((bucket >> TIME_SHIFT) & MASK_40), (lim >> 96) & MASK_64
            ),
        ),
    )
    if amount > level:
        self._over_limit(amount, level, lim)
    self._bucket[local][INBOUND] = (
        unsafe_sub(level, amount)
        | (block.timestamp << TIME_SHIFT)
        | (bucket >> KEEP_SHIFT << KEEP_SHIFT)
    )
    if route & HOME_FLAG != 0:
        assert extcall IERC20(local).transfer(recipient, amount, default_return_value=True), (
            "bridge: transfer failed"
        )
    else:
        # Listed only with code (and post-cancun code cannot vanish): no EXTCODESIZE.
        extcall IWrapped(local).mint(recipient, amount, skip_contract_check=True)
    log TransferUnlocked(
        id=id, token=local, recipient=recipient, nonce=nonce, amount=amount
    )


@external
def cancel(transfer: Transfer, signatures: DynArray[Signature, MAX_RELAYERS]):
    """
    @notice Cancels a transfer sent to this chain that was never unlocked, so it never can
            be, and the source chain can refund it: `REFUND_DELAY` after it was sent, or at
            once when its recipient calls.
    @dev Needs M CANCEL attestations: the transfer must be real (an invented one would burn
         a nonce a real transfer needs). Not stopped by the pause: it moves no tokens.
    @param transfer The transfer.
    @param signatures At least M CANCEL attestations, signers ascending.
    """
    local: address = empty(address)
    route: uint256 = 0
    bucket: uint256 = 0
    local, route, bucket = self._check_inbound(transfer, False)
    assert (
        msg.sender == transfer.recipient
        or block.timestamp >= transfer.timestamp + REFUND_DELAY
    ), "bridge: too early to cancel"
    id: bytes32 = self._transfer_id(transfer)
    self._check_signatures(id, ACTION_CANCEL, signatures, route)
    marked: uint256 = self._mark_processed(local, transfer.nonce, bucket)
    if marked != bucket:
        self._bucket[local][INBOUND] = marked
    log TransferCancelled(id=id, token=local, nonce=transfer.nonce)


@external
def mark_transferred(transfer: Transfer, signatures: DynArray[Signature, MAX_RELAYERS]):
    """
    @notice Completes a pending transfer sent from this chain once the peer unlocked it.
            The tokens stay locked (home) or burned (wrapped).
    @param transfer The transfer.
    @param signatures At least M DELIVERED attestations, signers ascending.
    """
    id: bytes32 = self._settle(transfer, ACTION_DELIVERED, signatures, self._peer)
    log TransferCompleted(id=id, token=transfer.token, nonce=transfer.nonce)


@external
def refund(transfer: Transfer, signatures: DynArray[Signature, MAX_RELAYERS]):
    """
    @notice Returns a pending transfer's tokens to its sender once the peer cancelled it.
    @dev Draws on the inbound limit like `unlock`: tokens come back into circulation here.
    @param transfer The transfer.
    @param signatures At least M REFUND attestations, signers ascending.
    """
    peer: uint256 = self._peer
    assert peer & PAUSED_FLAG == 0, "bridge: paused"
    id: bytes32 = self._settle(transfer, ACTION_REFUND, signatures, peer)
    token: address = transfer.token
    self._bucket[token][INBOUND] = self._draw(
        token, INBOUND, transfer.amount, self._bucket[token][INBOUND]
    )
    self._deliver(token, self._token[token], transfer.sender, transfer.amount)
    log TransferRefunded(
        id=id, token=token, sender=transfer.sender, nonce=transfer.nonce, amount=transfer.amount
    )


@external
def set_relayers(relayers: DynArray[address, MAX_RELAYERS], threshold: uint256):
    """
    @notice Replaces the relayer set and its threshold M. Governed: only by a Council vote.
    @dev The old set stops counting at once (a new epoch), so attestations of removed
         relayers are worthless from this block on. Rewrites every listed token's route
         (its copy of the epoch and M).
    @param relayers The new set (distinct, non-zero).
    @param threshold M, with 1 <= M <= N.
    """
    self._only_governance()
    n: uint256 = len(relayers)
    assert threshold >= 1 and threshold <= n, "bridge: threshold out of range"
    peer: uint256 = self._peer
    epoch: uint256 = ((peer >> EPOCH_SHIFT) & MASK_EPOCH) + 1
    assert epoch <= MASK_EPOCH, "bridge: too many relayer sets"
    for r: address in relayers:
        assert r != empty(address), "bridge: zero relayer"
        assert self._member[r] != epoch, "bridge: duplicate relayer"
        self._member[r] = epoch
    # threshold <= n <= MAX_RELAYERS = 32 < 2**6.
    peer = (peer & ~SET_BITS) | (epoch << EPOCH_SHIFT) | (threshold << THRESHOLD_SHIFT)
    self._peer = peer
    self._sync_tokens(peer, peer)
    self._relayers = relayers
    log RelayersSet(epoch=epoch, relayers=relayers, threshold=threshold)


@external
def set_peer(chain_id: uint256, bridge: address):
    """
    @notice Sets the other chain and its Bridge. Governed: only by a Council vote.
    @dev Rewrites every listed token's copies (outbound word, route; the old peer's routes
         are deleted), so transfers from the old peer are refused at once.
    @param chain_id The peer chain's id (not this chain's).
    @param bridge The peer Bridge.
    """
    self._only_governance()
    assert chain_id != 0 and chain_id != local_chain, "bridge: bad peer chain"
    assert bridge != empty(address), "bridge: zero peer"
    assert chain_id <= MASK_64, "bridge: bad peer chain"
    peer: uint256 = (
        (self._peer & (PAUSED_FLAG | SET_BITS)) | (chain_id << 160) | convert(bridge, uint256)
    )
    old_peer: uint256 = self._peer
    self._peer = peer
    self._sync_tokens(peer, old_peer)
    log PeerSet(chain_id=chain_id, bridge=bridge)


@external
def list_token(token: address, peer_token: address, home: bool):
    """
    @notice Lists a token: a home token (lock/release) or a wrapped token of this bridge
            (mint/burn), mapped to its counterpart on the peer chain. Governed.
    @param token The local token (a contract).
    @param peer_token Its counterpart on the peer chain.
    @param home True for a home token, False for a `WrappedToken` minted by this bridge.
    @dev At most `MAX_TOKENS` tokens are ever listed (each keeps its place when delisted).
    """
    self._only_governance()
    assert token.is_contract, "bridge: token has no code"
    assert peer_token != empty(address), "bridge: zero peer token"
    mapped: uint256 = self._inbound[peer_token]
    assert mapped == 0 or mapped & MASK_160 == convert(token, uint256), (
        "bridge: peer token mapped"
    )
    previous: uint256 = self._token[token]
    assert previous == 0 or previous & MASK_160 == convert(peer_token, uint256), (
        "bridge: token mapped"
    )
    if not home:
        assert staticcall IWrapped(token).bridge() == self, "bridge: not minted by this bridge"
    flags: uint256 = LISTED_FLAG
    if home:
        flags |= HOME_FLAG
    self._inbound[peer_token] = convert(token, uint256) | flags
    self._token[token] = convert(peer_token, uint256) | flags
    bucket_flags: uint256 = BUCKET_LISTED
    if home:
        bucket_flags |= BUCKET_HOME
    peer: uint256 = self._peer
    if previous == 0:
        assert len(self._tokens) < MAX_TOKENS, "bridge: too many tokens"
        self._tokens.append(token)
    bucket: uint256 = self._bucket[token][OUTBOUND]
    self._bucket[token][OUTBOUND] = (
        (bucket & ~(BUCKET_FLAGS | OUT_SYNCED)) | bucket_flags | self._synced(peer)
    )
    self._write_route(peer_token, peer)
    log TokenListed(token=token, peer_token=peer_token, home=home)


@external
def delist_token(token: address):
    """
    @notice Stops new transfers of `token` both ways; pending ones can still be completed,
            cancelled or refunded. Governed.
    @param token A listed token.
    """
    self._only_governance()
    cfg: uint256 = self._token[token]
    assert cfg & LISTED_FLAG != 0, "bridge: token not listed"
    self._token[token] = cfg ^ LISTED_FLAG
    peer_token: address = convert(convert(cfg & MASK_160, uint160), address)
    self._inbound[peer_token] ^= LISTED_FLAG
    self._write_route(peer_token, self._peer)
    self._bucket[token][OUTBOUND] &= ~BUCKET_LISTED
    log TokenDelisted(token=token)


@external
def set_limit(
    token: address,
    direction: uint256,
    capacity: uint256,
    refill_per_second: uint256,
    max_per_transfer: uint256,
):
    """
    @notice Sets a token bucket for one token and direction: at most `capacity` at once,
            refilled by `refill_per_second`, and at most `max_per_transfer` per transfer.
            The bucket starts full. Governed.
    @param token A known token.
    @param direction 0 outbound (lock, burn), 1 inbound (unlock, refund).
    @param capacity Bucket size in base units (< 2**96).
    @param refill_per_second Refill rate (< 2**64); 0 closes the bucket once drained.
    @param max_per_transfer Per-transfer cap, at most `capacity`.
    """
    self._only_governance()
    assert self._token[token] != 0, "bridge: token not listed"
    assert direction <= INBOUND, "bridge: bad direction"
    assert capacity <= MASK_96, "bridge: capacity too large"
    assert refill_per_second <= MASK_64, "bridge: rate too large"
    assert max_per_transfer <= capacity, "bridge: max above capacity"
    self._limit[token][direction] = (
        capacity | (refill_per_second << 96) | (max_per_transfer << 160)
    )
    bucket: uint256 = self._bucket[token][direction]
    self._bucket[token][direction] = (
        (bucket >> KEEP_SHIFT << KEEP_SHIFT) | capacity | (block.timestamp << TIME_SHIFT)
    )
    log LimitSet(
        token=token, direction=direction, capacity=capacity,
        refill_per_second=refill_per_second, max_per_transfer=max_per_transfer
    )


@external
def set_paused(paused: bool):
    """
    @notice Pauses or resumes lock, burn, unlock and refund. Governed.
    @dev Rewrites every listed token's copies of the pause (outbound word, route).
    @param paused True to pause.
    """
    self._only_governance()
    peer: uint256 = self._peer & ~PAUSED_FLAG
    if paused:
        peer |= PAUSED_FLAG
    self._peer = peer
    self._sync_tokens(peer, peer)
    log PausedSet(paused=paused)


@view
@external
def transfer_id(transfer: Transfer) -> bytes32:
    """
    @notice A transfer's id: its EIP-712 struct hash.
    @param transfer The transfer.
    @return The id.
    """
    return self._transfer_id(transfer)


@view
@external
def attestation_digest(id: bytes32, action: uint8) -> bytes32:
    """
    @notice The EIP-712 digest a relayer signs for `action` on this bridge.
    @param id The transfer id.
    @param action 1 unlock, 2 cancel (on the destination), 3 delivered, 4 refund (source).
    @return The digest.
    """
    return self._digest(id, action)


@view
@external
def peer_chain() -> uint256:
    """
    @notice The peer chain's id (0: not set).
    @return The id.
    """
    return (self._peer >> 160) & MASK_64


@view
@external
def peer_bridge() -> address:
    """
    @notice The peer chain's Bridge.
    @return Its address.
    """
    return convert(convert(self._peer & MASK_160, uint160), address)


@view
@external
def paused() -> bool:
    """
    @notice Whether lock, burn, unlock and refund are paused.
    @return True if paused.
    """
    return self._peer & PAUSED_FLAG != 0


@view
@external
def relayers() -> DynArray[address, MAX_RELAYERS]:
    """
    @notice The current relayer set.
    @return The relayers.
    """
    return self._relayers


@view
@external
def threshold() -> uint256:
    """
    @notice M, the signatures an attestation needs (0: no set yet).
    @return M.
    """
    return (self._peer >> THRESHOLD_SHIFT) & 63


@view
@external
def is_relayer(account: address) -> bool:
    """
    @notice Whether `account` is in the current relayer set.
    @param account The account.
    @return True for a current relayer.
    """
    epoch: uint256 = (self._peer >> EPOCH_SHIFT) & MASK_EPOCH
    return epoch != 0 and self._member[account] == epoch


@view
@external
def token_info(token: address) -> TokenView:
    """
    @notice A token's listing.
    @param token The local token.
    @return Its peer token and flags.
    """
    cfg: uint256 = self._token[token]
    return TokenView(
        peer_token=convert(convert(cfg & MASK_160, uint160), address),
        home=cfg & HOME_FLAG != 0,
        listed=cfg & LISTED_FLAG != 0,
    )


@view
@external
def local_token(peer_token: address) -> address:
    """
    @notice The local token a peer-chain token maps to.
    @param peer_token The token on the peer chain.
    @return The local token (zero if none).
    """
    return convert(convert(self._inbound[peer_token] & MASK_160, uint160), address)


@view
@external
def limit(token: address, direction: uint256) -> LimitView:
    """
    @notice A token bucket and what it holds now.
    @param token The token.
    @param direction 0 outbound, 1 inbound.
    @return Capacity, refill rate, per-transfer max and the amount available now.
    """
    lim: uint256 = self._limit[token][direction]
    return LimitView(
        capacity=lim & MASK_96,
        refill_per_second=(lim >> 96) & MASK_64,
        max_per_transfer=lim >> 160,
        available=self._level(lim, self._bucket[token][direction]),
    )


@view
@external
def next_nonce(token: address) -> uint256:
    """
    @notice The nonce the next outbound transfer of `token` gets.
    @param token The token.
    @return The nonce.
    """
    return (self._bucket[token][OUTBOUND] >> NONCE_SHIFT) & MASK_40


@view
@external
def is_pending(token: address, nonce: uint256) -> bool:
    """
    @notice Whether an outbound transfer is pending (neither completed nor refunded).
    @param token The token.
    @param nonce Its nonce.
    @return True if pending.
    """
    return self._pending(token, nonce, (self._bucket[token][OUTBOUND] >> NONCE_SHIFT) & MASK_40)


@view
@external
def is_processed(token: address, nonce: uint256) -> bool:
    """
    @notice Whether an inbound transfer of local `token` was unlocked or cancelled.
    @param token The local token.
    @param nonce The transfer's nonce.
    @return True if processed.
    """
    return self._is_processed(token, nonce, self._bucket[token][INBOUND])


@view
@external
def locked_transfers(token: address, start: uint256, count: uint256) -> DynArray[uint256, MAX_PAGE]:
    """
    @notice The pending outbound nonces of `token` among `[start, start + count)`; the
            transfers themselves are in the `TransferSent` events with those nonces.
    @param token The token.
    @param start First nonce to look at.
    @param count How many nonces to look at (at most `MAX_PAGE`).
    @return The pending nonces, ascending. Next page: `start + count`.
    """
    assert count <= MAX_PAGE, "bridge: page too large"
    result: DynArray[uint256, MAX_PAGE] = []
    next_nonce: uint256 = (self._bucket[token][OUTBOUND] >> NONCE_SHIFT) & MASK_40
    end: uint256 = min(start + count, next_nonce)
    nonce: uint256 = start
    for _: uint256 in range(MAX_PAGE):
        if nonce >= end:
            break
        if self._pending(token, nonce, next_nonce):
            result.append(nonce)
        nonce += 1
    return result


@pure
@internal
def _synced(peer: uint256) -> uint256:
    # The fields of `peer` copied into each outbound word: the peer chain and the pause.
    return (((peer >> 160) & MASK_64) << OUT_CHAIN_SHIFT) | ((peer & PAUSED_FLAG) >> 2)


@pure
@internal
def _route_key(chain_id: uint256, bridge: address, peer_token: address) -> bytes32:
    # `unlock` computes the same key in place (keep the two equal).
    return keccak256(abi_encode(chain_id, bridge, peer_token))


@internal
def _write_route(peer_token: address, peer: uint256):
    # The route of `peer_token` from the peer of `peer`: `_inbound`'s word (local token and
    # flags) with `peer`'s epoch, M and pause. No peer yet: no route.
    chain_id: uint256 = (peer >> 160) & MASK_64
    if chain_id != 0:
        key: bytes32 = self._route_key(
            chain_id, convert(convert(peer & MASK_160, uint160), address), peer_token
        )
        self._route[key] = (self._inbound[peer_token] & (MASK_160 | FLAGS)) | (
            peer & (SET_BITS | PAUSED_FLAG)
        )


@internal
def _sync_tokens(peer: uint256, old_peer: uint256):
    # Every copy of `_peer`'s fields, after `_peer` changed from `old_peer` to `peer`: each
    # listed token's outbound word and route (a new peer: the old peer's routes deleted).
    synced: uint256 = self._synced(peer)
    moved: bool = (old_peer ^ peer) & PEER_BITS != 0
    for token: address in self._tokens:
        word: uint256 = self._bucket[token][OUTBOUND]
        self._bucket[token][OUTBOUND] = (word & ~OUT_SYNCED) | synced
        peer_token: address = convert(convert(self._token[token] & MASK_160, uint160), address)
        if moved and (old_peer >> 160) & MASK_64 != 0:
            self._route[
                self._route_key(
                    (old_peer >> 160) & MASK_64,
                    convert(convert(old_peer & MASK_160, uint160), address),
                    peer_token,
                )
            ] = 0
        self._write_route(peer_token, peer)


@internal
def _only_governance():
    assert msg.sender == governance, "bridge: only by Council vote"


@view
@internal
def _listed_bucket(token: address) -> uint256:
    # The outbound bucket word, which carries the token's flags.
    bucket: uint256 = self._bucket[token][OUTBOUND]
    assert bucket & BUCKET_LISTED != 0, "bridge: token not listed"
    return bucket


@internal
def _send(
    token: address, bucket: uint256, amount: uint256, dest_chain: uint256, recipient: address
) -> bytes32:
    # The pause and the peer chain: the copies in the token's outbound word.
    assert bucket & OUT_PAUSED == 0, "bridge: paused"
    assert amount != 0, "bridge: zero amount"
    assert recipient != empty(address), "bridge: zero recipient"
    assert dest_chain == (bucket >> OUT_CHAIN_SHIFT) & MASK_64 and dest_chain != 0, (
        "bridge: wrong destination"
    )
    drawn: uint256 = self._draw(token, OUTBOUND, amount, bucket)
    nonce: uint256 = (drawn >> NONCE_SHIFT) & MASK_40
    assert nonce < MASK_40, "bridge: nonces exhausted"
    # The transfer is pending from now on by its nonce alone (below the next nonce, not
    # settled): no bitmap write here. nonce + 1 <= MASK_40: it stays in its field.
    self._bucket[token][OUTBOUND] = unsafe_add(drawn, 1 << NONCE_SHIFT)
    transfer: Transfer = Transfer(
        source_chain=local_chain,
        source_bridge=self,
        nonce=nonce,
        dest_chain=dest_chain,
        sender=msg.sender,
        recipient=recipient,
        token=token,
        amount=amount,
        timestamp=block.timestamp,
    )
    id: bytes32 = self._transfer_id(transfer)
    log TransferSent(
        id=id, token=token, nonce=nonce, sender=msg.sender, recipient=recipient,
        amount=amount, dest_chain=dest_chain, timestamp=block.timestamp
    )
    return id


@pure
@internal
def _over_limit(amount: uint256, level: uint256, lim: uint256):
    # Reverts with the seconds to wait until the bucket holds `amount`.
    rate: uint256 = (lim >> 96) & MASK_64
    assert rate != 0, "bridge: over limit, no refill"
    wait: uint256 = (amount - level + rate - 1) // rate
    raise concat("bridge: over limit, wait ", uint2str(wait), " s")


@view
@internal
def _refuse_inbound(transfer: Transfer, check_pause: bool):
    # A transfer with no route: from another chain or Bridge, or of a token never listed.
    peer: uint256 = self._peer
    assert not check_pause or peer & PAUSED_FLAG == 0, "bridge: paused"
    assert transfer.dest_chain == local_chain, "bridge: wrong destination"
    assert transfer.source_chain == (peer >> 160) & MASK_64 and transfer.source_chain != 0, (
        "bridge: wrong source chain"
    )
    assert transfer.source_bridge == convert(convert(peer & MASK_160, uint160), address), (
        "bridge: wrong source bridge"
    )
    assert transfer.amount != 0, "bridge: zero amount"
    raise "bridge: token not listed"


@view
@internal
def _check_inbound(transfer: Transfer, check_pause: bool) -> (address, uint256, uint256):
    # The checks every inbound action shares; returns the local token, its route word and
    # its inbound bucket word (which caches the processed bits of the current 64 nonces).
    # A route exists only for the configured peer's chain and Bridge, so a transfer from
    # anywhere else finds none; `_peer` is read only then, for the precise reason.
    route: uint256 = self._route[
        self._route_key(transfer.source_chain, transfer.source_bridge, transfer.token)
    ]
    if route == 0:
        self._refuse_inbound(transfer, check_pause)
    assert not check_pause or route & PAUSED_FLAG == 0, "bridge: paused"
    assert transfer.dest_chain == local_chain, "bridge: wrong destination"
    assert transfer.amount != 0, "bridge: zero amount"
    local: address = convert(convert(route & MASK_160, uint160), address)
    bucket: uint256 = self._bucket[local][INBOUND]
    assert not self._is_processed(local, transfer.nonce, bucket), "bridge: already processed"
    return local, route, bucket


@internal
def _settle(
    transfer: Transfer, action: uint8, signatures: DynArray[Signature, MAX_RELAYERS], peer: uint256
) -> bytes32:
    # Source side: the transfer must be one of ours and pending; sets its settled bit.
    assert transfer.source_chain == local_chain, "bridge: wrong source chain"
    assert transfer.source_bridge == self, "bridge: wrong source bridge"
    token: address = transfer.token
    nonce: uint256 = transfer.nonce
    word: uint256 = self._settled[token][nonce >> 8]
    bit: uint256 = 1 << (nonce & 255)
    assert (
        nonce < (self._bucket[token][OUTBOUND] >> NONCE_SHIFT) & MASK_40 and word & bit == 0
    ), "bridge: not pending"
    id: bytes32 = self._transfer_id(transfer)
    self._check_signatures(id, action, signatures, peer)
    self._settled[token][nonce >> 8] = word | bit
    return id


@internal
def _draw(token: address, direction: uint256, amount: uint256, bucket: uint256) -> uint256:
    # Takes `amount` from the bucket (`bucket`: its word, read by the caller); returns the
    # word to store (the caller stores it): the new level and time, bits 160..255 as given
    # (the nonce and flags, or the processed cache). Reverts with the seconds to wait when
    # the bucket is short.
    lim: uint256 = self._limit[token][direction]
    assert amount <= lim >> 160, "bridge: over per-transfer max"
    level: uint256 = self._level(lim, bucket)
    if amount > level:
        self._over_limit(amount, level, lim)
    # level - amount < 2**96 (level <= capacity); block.timestamp < 2**40 until the year
    # 36812 (then `_level`'s subtraction reverts: nothing is ever mis-read).
    return (
        unsafe_sub(level, amount)
        | (block.timestamp << TIME_SHIFT)
        | (bucket >> KEEP_SHIFT << KEEP_SHIFT)
    )


@view
@internal
def _level(lim: uint256, bucket: uint256) -> uint256:
    capacity: uint256 = lim & MASK_96
    level: uint256 = bucket & MASK_96
    elapsed: uint256 = block.timestamp - ((bucket >> TIME_SHIFT) & MASK_40)
    # elapsed < 2**40, rate < 2**64, level < 2**96: neither the product nor the sum can
    # overflow; the sum is capped at once.
    return min(capacity, unsafe_add(level, unsafe_mul(elapsed, (lim >> 96) & MASK_64)))


@view
@internal
def _pending(token: address, nonce: uint256, next_nonce: uint256) -> bool:
    # Sent (below the next nonce) and neither completed nor refunded.
    return nonce < next_nonce and (self._settled[token][nonce >> 8] >> (nonce & 255)) & 1 == 0


@view
@internal
def _is_processed(local: address, nonce: uint256, bucket: uint256) -> bool:
    # `bucket`: the inbound bucket word of `local`. The window of 64 nonces it caches is
    # authoritative for its nonces; `_processed` for every other nonce.
    if nonce >> 6 == bucket >> CACHE_INDEX_SHIFT:
        return (bucket >> (CACHE_SHIFT + (nonce & 63))) & 1 != 0
    return (self._processed[local][nonce >> 8] >> (nonce & 255)) & 1 != 0


@internal
def _mark_processed(local: address, nonce: uint256, bucket: uint256) -> uint256:
    # Sets the processed bit of `nonce` (the caller checked it is clear); returns the inbound
    # bucket word to store. The cache only moves forward: a nonce of a later window flushes
    # the cached window into `_processed` and loads the new one (once per 64 nonces in
    # order); a nonce of an earlier window is set in `_processed` directly.
    index: uint256 = nonce >> 6
    cached: uint256 = bucket >> CACHE_INDEX_SHIFT
    if index == cached:
        return bucket | (1 << (CACHE_SHIFT + (nonce & 63)))
    if index < cached or index > MASK_32:
        self._processed[local][nonce >> 8] |= 1 << (nonce & 255)
        return bucket
    window: uint256 = (bucket >> CACHE_SHIFT) & MASK_64
    if window != 0:
        # Window `cached` is lane `cached & 3` of bitmap word `cached >> 2`.
        self._processed[local][cached >> 2] |= window << ((cached & 3) << 6)
    loaded: uint256 = (self._processed[local][nonce >> 8] >> ((index & 3) << 6)) & MASK_64
    return (
        (bucket & MASK_160)
        | ((loaded | (1 << (nonce & 63))) << CACHE_SHIFT)
        | (index << CACHE_INDEX_SHIFT)
    )


@internal
def _deliver(token: address, cfg: uint256, to: address, amount: uint256):
    if cfg & HOME_FLAG != 0:
        assert extcall IERC20(token).transfer(to, amount, default_return_value=True), (
            "bridge: transfer failed"
        )
    else:
        # Listed only with code (and post-cancun code cannot vanish): no EXTCODESIZE.
        extcall IWrapped(token).mint(to, amount, skip_contract_check=True)


@view
@internal
def _transfer_id(t: Transfer) -> bytes32:
    return keccak256(
        abi_encode(
            TRANSFER_TYPEHASH,
            t.source_chain,
            t.source_bridge,
            t.nonce,
            t.dest_chain,
            t.sender,
            t.recipient,
            t.token,
            t.amount,
            t.timestamp,
        )
    )


@view
@internal
def _digest(id: bytes32, action: uint8) -> bytes32:
    return eip712._hash_typed_data_v4(keccak256(abi_encode(ATTESTATION_TYPEHASH, id, action)))


@view
@internal
def _check_signatures(
    id: bytes32, action: uint8, signatures: DynArray[Signature, MAX_RELAYERS], peer: uint256
):
    # `peer`: the `_peer` word (the set's epoch and M), read by the caller.
    threshold: uint256 = (peer >> THRESHOLD_SHIFT) & 63
    assert threshold != 0, "bridge: no relayer set"
    assert len(signatures) >= threshold, "bridge: fewer than M signatures"
    epoch: uint256 = (peer >> EPOCH_SHIFT) & MASK_EPOCH
    digest: bytes32 = self._digest(id, action)
    last: uint256 = 0
    for sig: Signature in signatures:
        assert convert(sig.s, uint256) <= HALF_N, "bridge: malleable signature"
        signer: address = ecrecover(digest, sig.v, sig.r, sig.s)
        assert signer != empty(address), "bridge: bad signature"
        as_int: uint256 = convert(signer, uint256)
        assert as_int > last, "bridge: signers not ascending"
        assert self._member[signer] == epoch, "bridge: signer not a relayer"
        last = as_int
