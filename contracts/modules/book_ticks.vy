# pragma version ~=0.4.3
"""
@title Order book price index: a three-level bitmap of occupied ticks
@license GNU Affero General Public License v3.0 only
@notice A tick is a price in units of the book's `PRICE_UNIT`, 1 <= tick < 2**24. A bit is
        set for every tick that has a non-empty price level (on either side: bids and asks
        never share a tick, because a crossing order is matched before it rests).
        `leaves[t >> 8]` holds the bits of 256 neighbouring ticks, `mids[t >> 16]` one bit
        per non-zero leaf word and `root` one bit per non-zero mid word. Finding the next
        occupied tick above or below any tick reads at most five words, whatever the
        number of levels; marking a tick writes one word in the common case (its leaf word
        already holds another level) and at most three.
"""


from snekmate.utils import math


# @dev Ticks are 24-bit: the root word's 256 bits cover 256 mid words of 256 leaf words.
MAX_TICK: constant(uint256) = 2**24 - 1

# @dev Typed 1 and 2 for shifts (a bare literal would not be a uint256).
ONE: constant(uint256) = 1
TWO: constant(uint256) = 2


# @dev One bit per non-zero mid word.
root: uint256

# @dev One bit per non-zero leaf word, keyed by `tick >> 16`.
mids: HashMap[uint256, uint256]

# @dev One bit per occupied tick, keyed by `tick >> 8`.
leaves: HashMap[uint256, uint256]


@internal
def _insert(tick: uint256):
    """
    @dev Marks `tick` occupied. It must not be marked already.
    """
    word: uint256 = tick >> 8
    leaf: uint256 = self.leaves[word]
    self.leaves[word] = leaf | (ONE << (tick & 255))
    if leaf == 0:
        # The leaf word was empty: record it in its mid word (and that one in the root).
        key: uint256 = word >> 8
        mid: uint256 = self.mids[key]
        self.mids[key] = mid | (ONE << (word & 255))
        if mid == 0:
            self.root |= ONE << key


@internal
def _remove(tick: uint256):
    """
    @dev Marks `tick` empty. It must be marked.
    """
    word: uint256 = tick >> 8
    leaf: uint256 = self.leaves[word] & ~(ONE << (tick & 255))
    self.leaves[word] = leaf
    if leaf == 0:
        key: uint256 = word >> 8
        mid: uint256 = self.mids[key] & ~(ONE << (word & 255))
        self.mids[key] = mid
        if mid == 0:
            self.root &= ~(ONE << key)


@view
@internal
def _next_above(tick: uint256) -> uint256:
    """
    @dev The lowest occupied tick strictly above `tick`, or 0 if there is none.
    """
    word: uint256 = tick >> 8
    # Bits strictly above position p: ~(2**(p + 1) - 1); `2 << 255` wraps to 0 on purpose.
    bits: uint256 = self.leaves[word] & ~unsafe_sub(TWO << (tick & 255), 1)
    if bits != 0:
        return (word << 8) | self._lowest_bit(bits)
    key: uint256 = word >> 8
    bits = self.mids[key] & ~unsafe_sub(TWO << (word & 255), 1)
    if bits == 0:
        bits = self.root & ~unsafe_sub(TWO << key, 1)
        if bits == 0:
            return 0
        key = self._lowest_bit(bits)
        bits = self.mids[key]
    word = (key << 8) | self._lowest_bit(bits)
    return (word << 8) | self._lowest_bit(self.leaves[word])


@view
@internal
def _next_below(tick: uint256) -> uint256:
    """
    @dev The highest occupied tick strictly below `tick`, or 0 if there is none.
    """
    word: uint256 = tick >> 8
    bits: uint256 = self.leaves[word] & unsafe_sub(ONE << (tick & 255), 1)
    if bits != 0:
        return (word << 8) | math._log2(bits, False)
    key: uint256 = word >> 8
    bits = self.mids[key] & unsafe_sub(ONE << (word & 255), 1)
    if bits == 0:
        bits = self.root & unsafe_sub(ONE << key, 1)
        if bits == 0:
            return 0
        key = math._log2(bits, False)
        bits = self.mids[key]
    word = (key << 8) | math._log2(bits, False)
    return (word << 8) | math._log2(self.leaves[word], False)


@pure
@internal
def _lowest_bit(bits: uint256) -> uint256:
    # `bits & -bits` isolates the lowest set bit; its log2 is that bit's position.
    return math._log2(bits & unsafe_sub(0, bits), False)
