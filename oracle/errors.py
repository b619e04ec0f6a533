"""The oracle package's exception hierarchy: every failure the CLI reports in one line."""


class OracleError(Exception):
    """Base class: a problem the operator can act on, reported as one line and exit 1."""


class DeploymentError(OracleError):
    """The deployments file is missing, unreadable or lacks a contract."""


class ConfigError(OracleError):
    """The TOML configuration is missing, malformed or fails validation."""


class UnknownDriverError(ConfigError):
    """A meter names a driver that no module in `oracle.drivers` provides."""


class KeystoreError(OracleError):
    """The unit's keystore is missing or unreadable, or its passphrase is wrong or missing."""


class StateError(OracleError):
    """The state directory is locked by another process or belongs to another unit or ledger."""


class OutboxUnavailable(OracleError):
    """The outbox cannot be written right now (a full disk, an I/O error, a lock held too
    long): nothing was recorded by that call, which the service tries again."""


class MeterError(OracleError):
    """A meter could not be read this time (transient: the next period tries again)."""


class ChainError(OracleError):
    """A problem talking to the chain or the ledger."""


class ChainUnavailable(ChainError):
    """The RPC endpoint did not answer after the retries (transient)."""


class UnitNotRegistered(ChainError):
    """The unit is not an active storage unit of the ledger ("ledger: unit not active")."""


class UnitUnfunded(ChainError):
    """The unit's key cannot pay for gas; delivery retries until someone funds it."""


class ReportReverted(ChainError):
    """The ledger refused a report; `reason` is the revert string, `mined` whether gas was spent."""

    def __init__(self, reason: str, *, mined: bool = False, tx_hash: str | None = None):
        super().__init__(f"ledger reverted: {reason}")
        self.reason = reason
        self.mined = mined
        self.tx_hash = tx_hash

    @property
    def bad_sequence(self) -> bool:
        return "bad sequence" in self.reason

    @property
    def unit_not_active(self) -> bool:
        return "unit not active" in self.reason


class LedgerRefusing(ChainError):
    """The ledger refuses a report for a reason not known to be about that report alone
    (e.g. "ledger: paused"): the report stays in the outbox and delivery backs off."""


class TxPending(ChainError):
    """A transaction was broadcast but no receipt arrived in time; its outcome is unknown."""

    def __init__(self, tx_hash: str):
        super().__init__(f"transaction {tx_hash} not mined in time")
        self.tx_hash = tx_hash
