"""`ape run deploy --network <ecosystem:network:provider> --account <alias>`.

Deploys the PowerHive contracts, wires their roles and writes `deployments/<chain_id>.json`
(addresses, ABIs, deploy block) for the off-chain services. The chain's Bridge is deployed
unpeered (it refuses every transfer until peered).

Two communities: deploy chain A as above, then chain B with `--peer deployments/<A>.json`:
this deploys the protocol, the Bridge and the wrapped ENT and eEuro on B, wires B's Bridge to
A's by B's Council votes, then A's Bridge to B's by A's Council votes (on `--peer-network`,
by default the network recorded in A's file), and writes B's file and A's `bridge` section.
"""

from pathlib import Path

import click
from ape import chain, networks
from ape.cli import ConnectedProviderCommand, account_option
from ape.exceptions import ApeException
from ape.logging import logger
from ape_accounts import KeyfileAccount

from oracle.deployments import deployment_path
from oracle.errors import DeploymentError
from scripts._bridge_deploy import (
    WiringError,
    bridge_section,
    check_sole_voter,
    deploy_bridge,
    deploy_remote,
    is_anvil,
    parse_limit,
    read_peer_file,
    relayer_config,
    side_of_deployment,
    write_bridged,
)
from scripts._protocol import deploy_protocol, out_dir_option

HELP = """Deploy PowerHive (Council, ledger, eEuro, HVT, Beekeeper, order book, auction,
balancing market, hive market, Bridge) and write deployments/<chain_id>.json (mode 0644)
for the oracles, the powerhive CLI and the relayers.

\b
  ape run deploy --network ethereum:powerhive-poa:node --account operator

The deploying account becomes the Council's only voter. A keystore account is
unlocked without a prompt when APE_ACCOUNTS_<alias>_PASSPHRASE is set (for
`--account operator`: APE_ACCOUNTS_operator_PASSPHRASE); otherwise Ape prompts.
An existing file is never replaced without --force, and with --force the old one
is kept as <chain_id>.json.<UTC time>.bak. The next steps (add voters, register
storage units, set the banker, install the oracles) are printed at the end."""


def next_steps(path: Path, chain_id: int, rpc: str) -> list[str]:
    """What an operator does after a deploy, as commands (printed by `cli`)."""
    return [
        'Next steps (README, "Deploy to your PoA network"):',
        f"  export POWERHIVE_RPC={rpc} POWERHIVE_CHAIN_ID={chain_id} "
        f"POWERHIVE_DEPLOYMENTS={path.parent}",
        "  export POWERHIVE_KEYSTORE=~/.ape/accounts/<deployer>.json  # the first voter",
        "  powerhive propose add-voter 0x...                # more voters (each then votes)",
        "  powerhive propose register-unit 0xUnit 0xOwner   # each storage unit's key",
        "  powerhive propose set-banker 0x...               # who mints and redeems eEuro",
        f"  copy {path} to each Pi, then there: oracle check --config oracle.toml",
        "  (docs/oracle-pi.md), and: systemctl enable --now powerhive-oracle",
    ]


@click.command(cls=ConnectedProviderCommand, short_help="Deploy PowerHive", help=HELP)
@account_option()
@click.option("--treasury", default=None, help="Receiver of the HVT supply (default: deployer).")
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing deployments file (kept as <chain_id>.json.<UTC time>.bak).",
)
@out_dir_option
@click.option(
    "--peer",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Chain A's deployments/<chain_id>.json: deploy this chain as its bridge peer.",
)
@click.option(
    "--peer-network",
    default=None,
    help="Chain A's network choice (default: the one recorded in its file).",
)
@click.option(
    "--relayer",
    "relayers",
    multiple=True,
    help="A relayer address (repeat for each; default on Anvil only: its accounts 7, 8, 9).",
)
@click.option("--threshold", type=int, default=None, help="M (default: a majority of the set).")
@click.option(
    "--limit",
    "limits",
    multiple=True,
    help="TOKEN=CAPACITY[/MAX] in tokens, refilled per day (default ENT=10000/1000, "
    "eEuro=100000/10000).",
)
def cli(
    network, account, treasury, force, out_dir, peer, peer_network, relayers, threshold, limits
):
    path = deployment_path(out_dir, chain.chain_id)
    if path.exists() and not force:
        # Checked before deploying anything, so nothing is spent on a refused run.
        raise click.ClickException(f"{path} already exists; pass --force to overwrite it")
    if (relayers or threshold is not None or limits or peer_network) and peer is None:
        raise click.ClickException("--relayer, --threshold, --limit and --peer-network need --peer")
    if isinstance(account, KeyfileAccount):
        # Non-interactive when APE_ACCOUNTS_<alias>_PASSPHRASE is set; prompts otherwise.
        account.set_autosign(True)
    provider = chain.provider
    choice = f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"
    try:
        if peer is None:
            protocol = deploy_protocol(account, treasury=treasury)
            deploy_bridge(protocol)
            written = write_bridged(
                protocol.to_deployment(choice), bridge_section(None, None, None, None), out_dir,
                force=force, backup=True,
            )  # fmt: skip
            count = len(protocol.contracts)
            logger.success(f"Deployed {count} contracts on chain {chain.chain_id}")
            logger.success(f"Wrote {written} (Bridge unpeered: deploy a peer with --peer)")
        else:
            written = _deploy_peer(account, treasury, force, out_dir, choice, peer, peer_network,
                                   relayers, threshold, limits)  # fmt: skip
    except (WiringError, DeploymentError) as exc:
        raise click.ClickException(str(exc)) from None
    except ApeException as exc:
        # An unreachable peer network, a refused transaction: one line, no traceback.
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    click.echo("\n".join(next_steps(written, chain.chain_id, _rpc_uri(provider))))


def _rpc_uri(provider) -> str:
    return getattr(provider, "uri", None) or "http://127.0.0.1:8545"


def _deploy_peer(account, treasury, force, out_dir, choice, peer, peer_network, relayers,
                 threshold, limits):  # fmt: skip
    home_file, _ = read_peer_file(peer)
    if home_file.chain_id == chain.chain_id:
        raise WiringError(f"--peer {peer} is this chain's own file (chain {chain.chain_id})")
    limits = dict(parse_limit(text) for text in limits)
    local = is_anvil()
    # Everything about chain A is checked before any transaction is sent on either chain.
    home_network = networks.parse_network_choice(peer_network or home_file.network)
    with home_network:
        home = side_of_deployment(home_file)
        check_sole_voter(home.council, account, home.chain_id)
        local = local and is_anvil()
    config = relayer_config(list(relayers), threshold, limits, local=local)
    logger.info(
        f"Bridge {home.chain_id} <-> {chain.chain_id}: relayers {config.relayers}, "
        f"M = {config.threshold}"
    )
    protocol, remote = deploy_remote(account, home, home_network, config, treasury=treasury)
    written = write_bridged(
        protocol.to_deployment(choice),
        bridge_section(remote, home, home_file.network, config),
        out_dir,
        force=force,
        backup=True,
    )
    logger.success(f"Deployed {len(protocol.contracts)} contracts on chain {chain.chain_id}")
    logger.success(f"Wrote {written}")
    updated = write_bridged(
        home_file, bridge_section(home, remote, choice, config), peer.parent, force=True,
        backup=True,
    )  # fmt: skip
    logger.success(f"Wrote the bridge section of {updated} (the previous file kept as .bak)")
    return written
