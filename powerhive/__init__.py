"""PowerHive's client library and the `powerhive` CLI for members and voters.

A sibling of the `oracle` package (the service on each Pi): `units` converts human amounts
to and from base units, `client` opens contract handles from `deployments/<chain_id>.json`
and sends transactions, `actions` names every governed call, `ballots` decodes Council
ballots, `market` pages and previews the order book, and `cli` puts them on the command
line. The `ape run` scripts use the same modules for the same logic.
"""

__version__ = "0.1.0"
