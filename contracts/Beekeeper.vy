# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Beekeeper (SPEC §7), version 1
@license GNU Affero General Public License v3.0 only
@notice The implementation behind `BeekeeperProxy`: meters, stablecoins and order books
        governed by the Council; hives on HVT burn-and-stake; upgrades voted by hive owners.
        All rules live in `modules/beekeeper.vy`; a later version initializes the same module
        first and appends its own storage after it.
@custom:security Deployed bare, it is locked (marked initialized) so that only proxies
        initialize it, in their own storage.
"""


from .modules import beekeeper


initializes: beekeeper


exports: beekeeper.__interface__


@deploy
def __init__():
    """
    @notice Locks this implementation's own storage: it is only ever run through a proxy.
    """
    beekeeper.initialized = True
