"""The oracle package's exception hierarchy: every failure the CLI reports in one line."""


class OracleError(Exception):
    """Base class: a problem the operator can act on, reported as one line and exit 1."""


class DeploymentError(OracleError):
    """The deployments file is missing, unreadable or lacks a contract."""
