"""The wiring both services share: which chain an endpoint serves, the signing key from its
keystore and passphrase, a contract from the deployments file, and the meter service's ledger
client built from its configuration.

Every failure is one `OracleError` line (the CLI prints it and exits 1).
"""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from oracle.chain import ChainClient
from oracle.config import OracleConfig
from oracle.deployments import ContractRecord, load_deployment
from oracle.errors import ChainError, ChainUnavailable
from oracle.keystore import keystore_address, load_account, resolve_passphrase


def rpc_chain_id(rpc_url: str, *, timeout_s: float, hint: str = "") -> int:
    """The chain id `rpc_url` serves; `ChainUnavailable` (with `hint`) when it does not answer."""
    from web3 import Web3

    w3 = Web3(
        Web3.HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
        )
    )
    try:
        return int(w3.eth.chain_id)
    except Exception as exc:
        raise ChainUnavailable(
            f"{rpc_url} unreachable ({type(exc).__name__})" + (f"; {hint}" if hint else "")
        ) from None


def check_served_chain(rpc_url: str, served: int, configured: int) -> None:
    """A node serving another chain than the configuration names is an operator error."""
    if served != configured:
        raise ChainError(f"{rpc_url} serves chain {served}, the config says {configured}")


def load_key(
    keystore: Path,
    passphrase_file: Path | None,
    passphrase_env: str,
    passphrase: str | None = None,
) -> LocalAccount:
    """The key of `keystore`, its passphrase given, from `passphrase_file`, else from the
    variable `passphrase_env`, else prompted for on a terminal."""
    if passphrase is None:
        passphrase = resolve_passphrase(passphrase_file, passphrase_env)
    return load_account(keystore, passphrase)


def contract(deployments_dir: Path, chain_id: int, name: str) -> ContractRecord:
    """The contract `name` of `deployments_dir/<chain_id>.json`."""
    return load_deployment(deployments_dir, chain_id).contract(name)


# -- the meter service's ledger ---------------------------------------------------------------


def probe_chain_id(config: OracleConfig) -> int:
    """The configured chain id, else the RPC endpoint's."""
    if config.chain.chain_id is not None:
        return config.chain.chain_id
    return rpc_chain_id(
        config.chain.rpc_url,
        timeout_s=config.chain.rpc_timeout_s,
        hint="set chain.chain_id to start without the chain",
    )


def chain_client(
    config: OracleConfig, *, chain_id: int, account=None, unit: str | None = None
) -> ChainClient:
    """A client for the configured ledger, its address and ABI from the deployments file."""
    c = config.chain
    record = contract(c.deployments_dir, chain_id, c.ledger)
    return ChainClient(
        account=account,
        unit=unit or keystore_address(c.keystore),
        ledger_address=record.address,
        ledger_abi=record.abi,
        **c.client_options(),
    )
