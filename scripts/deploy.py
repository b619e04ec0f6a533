"""`ape run deploy --network <ecosystem:network:provider> --account <alias>`.

Deploys the PowerHive contracts, wires their roles and writes `deployments/<chain_id>.json`
(addresses, ABIs, deploy block) for the off-chain services.
"""

from pathlib import Path

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, account_option
from ape.logging import logger
from ape_accounts import KeyfileAccount

from oracle.deployments import deployment_path
from scripts._protocol import DEPLOYMENTS_DIR, deploy_protocol, save_protocol


@click.command(cls=ConnectedProviderCommand, short_help="Deploy PowerHive")
@account_option()
@click.option("--treasury", default=None, help="Receiver of the HVT supply (default: deployer).")
@click.option("--force", is_flag=True, help="Overwrite an existing deployments file.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEPLOYMENTS_DIR,
    show_default=True,
    help="Where deployments/<chain_id>.json is written.",
)
def cli(network, account, treasury, force, out_dir):
    path = deployment_path(out_dir, chain.chain_id)
    if path.exists() and not force:
        # Checked before deploying anything, so nothing is spent on a refused run.
        raise click.ClickException(f"{path} already exists; pass --force to overwrite it")
    if isinstance(account, KeyfileAccount):
        # Non-interactive when APE_ACCOUNTS_<alias>_PASSPHRASE is set; prompts otherwise.
        account.set_autosign(True)
    protocol = deploy_protocol(account, treasury=treasury)
    provider = chain.provider
    choice = f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"
    written = save_protocol(protocol, choice, force=force, directory=out_dir)
    logger.success(f"Deployed {len(protocol.contracts)} contracts on chain {chain.chain_id}")
    logger.success(f"Wrote {written}")
