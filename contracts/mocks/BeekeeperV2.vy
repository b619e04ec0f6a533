# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Beekeeper version 2 (test implementation)
@license GNU Affero General Public License v3.0 only
@notice Version 1 plus one storage field appended after it (a governed note per hive), to
        prove that an upgrade keeps every record and that a new version only appends.
"""


from ..modules import beekeeper


initializes: beekeeper


exports: beekeeper.__interface__


# @dev The new field: after every field of version 1.
hive_note: public(HashMap[uint256, String[32]])


event HiveNoteSet:
    hive: indexed(uint256)
    note: String[32]


@deploy
def __init__():
    beekeeper.initialized = True


@external
def set_hive_note(hive: uint256, note: String[32]):
    """
    @notice The hive's owner sets a note (new in version 2).
    @param hive The caller's hive.
    @param note The note.
    """
    assert beekeeper._hive0[hive] != 0, "beekeeper: unknown hive"
    assert convert(beekeeper._hive0[hive] & 2**160 - 1, address) == msg.sender, "beekeeper: not hive owner"
    self.hive_note[hive] = note
    log HiveNoteSet(hive=hive, note=note)


@pure
@external
def version() -> uint256:
    """
    @notice The implementation's version.
    @return 2.
    """
    return 2
