"""The client library's exception hierarchy: every failure the CLI reports in one line."""


class PowerhiveError(Exception):
    """Base class: a problem the user can act on, reported as one line and exit 1."""


class AmountError(PowerhiveError, ValueError):
    """An amount, price or duration that is not a number, is negative, or has more decimals
    than its unit can hold."""


class ActionError(PowerhiveError):
    """A governed action is unknown or its arguments are invalid."""


class BallotError(PowerhiveError):
    """No open ballot matches the given id, or the id is ambiguous."""


class NetworkError(PowerhiveError):
    """The RPC endpoint cannot be reached or is not the chain the user asked for."""


class TransactionFailed(PowerhiveError):
    """A transaction (or its simulation) reverted; the message carries the contract's reason."""
