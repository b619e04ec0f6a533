"""The unit's signing key: an encrypted Ethereum keystore (v3 JSON), as `ape accounts` writes.

`ape accounts generate <alias>` (or `oracle keygen`) produces `<alias>.json`; copy it to the
Pi. The passphrase comes from a file (e.g. a systemd credential) or an environment variable,
and is only ever prompted for when a person is at the terminal.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from oracle.errors import KeystoreError


def _read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeystoreError(f"keystore {path}: not found") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"keystore {path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or ("crypto" not in data and "Crypto" not in data):
        raise KeystoreError(f"keystore {path}: not an encrypted JSON keystore")
    return data


def keystore_address(path: Path) -> str:
    """The account's address, read without the passphrase."""
    data = _read(path)
    try:
        return to_checksum_address(data["address"])
    except (KeyError, ValueError, TypeError):
        raise KeystoreError(f"keystore {path}: no address field") from None


def resolve_passphrase(
    passphrase_file: Path | None, passphrase_env: str, *, interactive: bool | None = None
) -> str:
    """The passphrase from `passphrase_file`, else `$passphrase_env`, else a prompt on a TTY."""
    if passphrase_file is not None:
        try:
            return Path(passphrase_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise KeystoreError(
                f"passphrase file {passphrase_file}: {exc.strerror or exc}"
            ) from None
    value = os.environ.get(passphrase_env)
    if value is not None:
        return value
    if interactive is None:
        interactive = sys.stdin.isatty()
    if interactive:
        import click

        return click.prompt("Keystore passphrase", hide_input=True, err=True)
    raise KeystoreError(
        f"no keystore passphrase: set chain.passphrase_file or the {passphrase_env} variable"
    )


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In the decrypting child: the kernel kills it when the service dies (SIGKILL, OOM),
    instead of leaving it reparented with the KDF's memory."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still applies
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _decrypt(data: dict, passphrase: str) -> bytes:
    return bytes(Account.decrypt(data, passphrase))


def load_account(path: Path, passphrase: str) -> LocalAccount:
    """Decrypt the keystore in a short-lived child process.

    The KDF of an `ape accounts` keystore (scrypt N=2**18, r=8) needs 256 MiB while it runs;
    in a child that memory never counts against the long-running service (whose resident
    size stays below 100 MB on a Pi) and is returned to the system when the child exits.
    """
    data = _read(path)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        with ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context(method),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            key = pool.submit(_decrypt, data, passphrase).result()
    except ValueError:
        raise KeystoreError(f"keystore {path}: wrong passphrase") from None
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"keystore {path}: malformed ({exc!r})") from None
    return Account.from_key(key)


def create_keystore(path: Path, passphrase: str, *, private_key: bytes | None = None) -> str:
    """Write a new encrypted keystore (the `ape accounts` format); returns the address."""
    path = Path(path)
    if path.exists():
        raise KeystoreError(f"keystore {path}: already exists")
    account = Account.from_key(private_key) if private_key else Account.create()
    data = Account.encrypt(account.key, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return account.address
