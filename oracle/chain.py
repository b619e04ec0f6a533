"""The chain client: web3.py over HTTP, the unit's local key, explicit nonces, retries.

- RPC and connection errors are retried with exponential backoff (tenacity); when the retries
  run out the caller gets `ChainUnavailable` and tries again later.
- A revert is never retried here: it surfaces as `ReportReverted` with the ledger's reason,
  for the service to decide (reconcile on "ledger: bad sequence", reject a report the ledger
  refuses for itself, hold back on any other refusal).
- Nonces are tracked locally and re-read from the chain after any doubt.
- Proof-of-authority chains (extraData longer than 32 bytes) get web3's
  `ExtraDataToPOAMiddleware`, configured or detected.
- Every event read of every service (`get_logs`) goes out in ranges of at most
  `max_block_range` blocks; a range the node refuses as too wide or too full is halved and
  read again, the smaller size kept for the client's later reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.middleware import ExtraDataToPOAMiddleware

from oracle.errors import (
    ChainError,
    ChainUnavailable,
    ReportReverted,
    TxPending,
    UnitNotRegistered,
    UnitUnfunded,
)
from oracle.outbox import Report

log = logging.getLogger("oracle.chain")

T = TypeVar("T")
SINGLE_METHODS = {
    "produced": "energy_produced",
    "consumed": "energy_consumed",
    "actual": "report_actual_energy",
}
# How nodes refuse an eth_getLogs range as too wide or its answer as too big (lower case):
# geth "query returned more than 10000 results", Alchemy/Infura "block range is too large" /
# "Log response size exceeded", Besu "exceeds maximum", Infura's -32005 "limit exceeded".
LOG_RANGE_ERRORS = (
    "returned more than",
    "block range",
    "range is too large",
    "exceeds maximum",
    "response size exceeded",
    "too many results",
    "limit exceeded",
)


class _RangeRefused(Exception):
    """The node refused an eth_getLogs range as too wide (internal to `ChainClient.logs`)."""


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the node did not answer, or answered with a server-side error."""
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        # 501 Not Implemented / 505: the endpoint is not a JSON-RPC node; retrying won't help.
        return (
            response is None
            or (response.status_code >= 500 and response.status_code not in (501, 505))
            or response.status_code == 429
        )
    return isinstance(exc, requests.RequestException | ConnectionError | TimeoutError)


def revert_reason(exc: ContractLogicError) -> str:
    message = str(exc.args[0] if exc.args else exc)
    return message.removeprefix("execution reverted: ").removeprefix("execution reverted") or (
        "reverted without a reason"
    )


@dataclass(frozen=True)
class UnitInfo:
    owner: str
    active: bool
    available_wh: int
    locked_wh: int
    last_seq: int
    max_report_wh: int | None = None  # None: an older ledger without a per-unit maximum


@dataclass(frozen=True)
class OnChainReport:
    """One report as the ledger's events record it."""

    seq: int
    kind: str
    account: str | None
    wh: int
    tx_hash: str
    block_number: int

    def content(self) -> tuple[str, str | None, int]:
        return (self.kind, self.account, self.wh)


@dataclass(frozen=True)
class SignedReport:
    """A signed, not yet broadcast transaction carrying `count` reports from `first_seq`."""

    tx_hash: str
    raw: bytes
    nonce: int
    method: str
    first_seq: int
    count: int
    gas: int


@dataclass(frozen=True)
class OverConsumption:
    """An `OverConsumed` event of the ledger for this unit: `wh` drawn by `consumer` without a
    session (or beyond its reserve or escrow), recorded by report `seq`, never rejected."""

    consumer: str
    seq: int
    wh: int
    tx_hash: str
    block_number: int


@dataclass(frozen=True)
class Mined:
    tx_hash: str
    block_number: int
    gas_used: int
    # The over-consumption the ledger recorded in this transaction (issue 15, item 4).
    over_consumed: tuple[OverConsumption, ...] = ()
    block_hash: str | None = None


class ChainClient:
    def __init__(
        self,
        *,
        rpc_url: str,
        account: LocalAccount | None,
        unit: str,
        ledger_address: str,
        ledger_abi: list[dict[str, Any]],
        poa: bool | None = None,
        rpc_timeout_s: float = 10.0,
        rpc_retries: int = 3,
        tx_timeout_s: float = 120.0,
        gas_margin: float = 1.25,
        max_fee_gwei: float | None = None,
        priority_fee_gwei: float | None = None,
        poll_s: float = 0.05,
        max_block_range: int = 2000,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rpc_url = rpc_url
        self.account = account
        self.unit = to_checksum_address(unit)
        provider = Web3.HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": rpc_timeout_s},
            # Retries are ours (tenacity), for every call, with backoff.
            exception_retry_configuration=None,
        )
        self.w3 = Web3(provider)
        self.ledger = self.w3.eth.contract(
            address=to_checksum_address(ledger_address), abi=ledger_abi
        )
        self._poa = poa
        self._poa_checked = False
        # The unit's largest single report on the ledger, as last read (`unit_info`).
        self.max_report_wh: int | None = None
        self.tx_timeout_s = tx_timeout_s
        self.gas_margin = gas_margin
        self.max_fee_wei = None if max_fee_gwei is None else int(max_fee_gwei * 10**9)
        self.priority_fee_wei = (
            None if priority_fee_gwei is None else int(priority_fee_gwei * 10**9)
        )
        self.poll_s = poll_s
        # Blocks per eth_getLogs request: the configured maximum, halved while the node
        # refuses ranges that wide (`logs`).
        self.max_block_range = max_block_range
        self.log_range = max_block_range
        self._sleep = sleep
        self._nonce: int | None = None
        self._chain_id: int | None = None
        # When the RPC call under way started (monotonic), for health: a hung node shows.
        self.call_started: float | None = None
        self._retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(rpc_retries + 1),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            sleep=sleep,
            reraise=True,
            before_sleep=lambda rs: log.debug(
                "rpc retry",
                extra={"attempt": rs.attempt_number, "error": str(rs.outcome.exception())},
            ),
        )

    # -- plumbing ----------------------------------------------------------------------------

    def rpc(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn` with retries: `ChainUnavailable` once they are exhausted, `ChainError`
        for an error answer; reverts (`ContractLogicError`) and `TransactionNotFound` pass."""
        self.call_started = self.call_started or time.monotonic()
        try:
            return self._retrying(fn, *args, **kwargs)
        except (ContractLogicError, TransactionNotFound):
            raise
        except Web3RPCError as exc:
            raise ChainError(f"{self.rpc_url}: {_short(exc)}") from None
        except Exception as exc:
            if _transient(exc):
                raise ChainUnavailable(f"{self.rpc_url} unreachable: {_short(exc)}") from None
            if isinstance(exc, requests.RequestException):
                raise ChainError(f"{self.rpc_url}: {_short(exc)}") from None
            raise
        finally:
            self.call_started = None

    def _ensure_poa(self) -> None:
        if self._poa_checked:
            return
        poa = self._poa
        if poa is None:
            # Raw request: web3's block formatter would refuse a long extraData before we look.
            block = self.rpc(
                self.w3.provider.make_request, "eth_getBlockByNumber", ["latest", False]
            )
            extra = (block.get("result") or {}).get("extraData") or "0x"
            poa = len(bytes.fromhex(extra[2:])) > 32
        if poa:
            self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0, name="poa")
            log.info("proof-of-authority chain: extraData middleware enabled")
        self._poa_checked = True

    def connect(self) -> int:
        """Check the endpoint; returns the chain id."""
        self._chain_id = self.rpc(lambda: self.w3.eth.chain_id)
        self._ensure_poa()
        return self._chain_id

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self.connect()
        assert self._chain_id is not None
        return self._chain_id

    # -- views -------------------------------------------------------------------------------

    def unit_info(self) -> UnitInfo:
        self._ensure_poa()
        try:
            raw = self.rpc(self.ledger.functions.unit_info(self.unit).call)
        except ContractLogicError as exc:
            reason = revert_reason(exc)
            if reason == "reverted without a reason":
                raise ChainError(
                    f"the contract at {self.ledger.address} on {self.rpc_url} is not the "
                    "ledger (unit_info reverted without a reason): check chain.ledger and the "
                    "deployments file"
                ) from None
            raise ChainError(f"ledger unit_info reverted: {reason}") from None
        except BadFunctionCallOutput:
            raise ChainError(
                f"no ledger at {self.ledger.address} on {self.rpc_url} (wrong chain or deployment?)"
            ) from None
        # Older ledgers return five fields, without the sixth (max_report_wh).
        owner, active, available, locked, last_seq = raw[:5]
        cap = int(raw[5]) if len(raw) > 5 and int(raw[5]) > 0 else None
        self.max_report_wh = cap
        return UnitInfo(owner, bool(active), int(available), int(locked), int(last_seq), cap)

    def check_unit(self) -> UnitInfo:
        info = self.unit_info()
        if not info.active:
            raise UnitNotRegistered(
                f"unit {self.unit} is not an active storage unit of ledger "
                f"{self.ledger.address} (governance must register it first)"
            )
        return info

    def block_number(self) -> int:
        return int(self.rpc(lambda: self.w3.eth.block_number))

    def next_nonce(self) -> int:
        """The nonce of the next transaction: counted locally, read from the chain (pending
        transactions included) when there is no local count."""
        if self._nonce is None:
            self._nonce = int(self.rpc(self.w3.eth.get_transaction_count, self.unit, "pending"))
        return self._nonce

    def reset_nonce(self) -> None:
        """Forget the local nonce: the next transaction reads it from the chain (after a
        reorganisation, an outage, a refused broadcast: whenever the local count is in doubt)."""
        self._nonce = None

    def logs(
        self, fetch: Callable[[int, int], list[T]], from_block: int, to_block: int | None = None
    ) -> list[T]:
        """Every log `fetch(first, last)` returns over `from_block..to_block` (None: the head
        now), read in ranges of at most `log_range` blocks, in chain order. A range the node
        refuses as too wide or too full (`LOG_RANGE_ERRORS`) is halved and read again; the
        smaller size is kept for later reads. A single block refused is a `ChainError`."""
        self._ensure_poa()
        if to_block is None:
            to_block = self.block_number()
        found: list[T] = []
        first = from_block
        while first <= to_block:
            last = min(to_block, first + self.log_range - 1)
            try:
                found.extend(self.rpc(_refusing_ranges(fetch), first, last))
            except _RangeRefused as exc:
                if last == first:
                    raise ChainError(
                        f"{self.rpc_url} refuses eth_getLogs even for block {first}: {exc}"
                    ) from None
                self.log_range = max(1, (last - first + 1) // 2)
                log.info(
                    "eth_getLogs range refused; reading smaller ranges",
                    extra={"blocks": last - first + 1, "now": self.log_range, "error": str(exc)},
                )
                continue
            first = last + 1
        return found

    def reports_since(self, from_block: int, to_block: int) -> dict[int, OnChainReport]:
        """The unit's reports the ledger's events hold in `from_block..to_block`, by seq."""
        self._ensure_poa()
        found: dict[int, OnChainReport] = {}
        events = self.ledger.events
        for event, kind, who in (
            (events.EnergyProduced, "produced", "producer"),
            (events.EnergyConsumed, "consumed", "consumer"),
            (events.ActualEnergyReported, "actual", None),
        ):
            try:
                logs = self.logs(
                    lambda a, b, event=event: event.get_logs(
                        from_block=a, to_block=b, argument_filters={"unit": self.unit}
                    ),
                    from_block,
                    to_block,
                )
            except ContractLogicError as exc:
                raise ChainError(f"reading the ledger's events failed: {exc}") from None
            for entry in logs:
                args = entry["args"]
                found[int(args["seq"])] = OnChainReport(
                    seq=int(args["seq"]),
                    kind=kind,
                    account=to_checksum_address(args[who]) if who else None,
                    wh=int(args["wh"]),
                    tx_hash=entry["transactionHash"].to_0x_hex().lower(),
                    block_number=int(entry["blockNumber"]),
                )
        return found

    def gas_used(self, tx_hash: str) -> int | None:
        """The gas a mined transaction used (of a whole batch: once per transaction)."""
        cache = self.__dict__.setdefault("_gas_cache", {})
        if tx_hash not in cache:
            try:
                receipt = self.rpc(self.w3.eth.get_transaction_receipt, tx_hash)
            except TransactionNotFound:
                return None
            cache[tx_hash] = int(receipt["gasUsed"])
        return cache[tx_hash]

    def last_seq(self) -> int:
        return int(self.rpc(self.ledger.functions.last_seq(self.unit).call))

    def balance_wei(self) -> int:
        return int(self.rpc(self.w3.eth.get_balance, self.unit))

    def nonces(self) -> tuple[int, int]:
        """(latest, pending) transaction counts of the unit."""
        latest = self.rpc(self.w3.eth.get_transaction_count, self.unit, "latest")
        pending = self.rpc(self.w3.eth.get_transaction_count, self.unit, "pending")
        return int(latest), int(pending)

    def wait_settled(
        self,
        timeout_s: float,
        sleep: Callable[[float], Any] = time.sleep,
        give_up: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait until none of the unit's transactions is pending; False on timeout or when
        `give_up()` turns true."""
        deadline = time.monotonic() + timeout_s
        while True:
            latest, pending = self.nonces()
            if pending <= latest:
                self._nonce = latest
                return True
            if time.monotonic() >= deadline or (give_up is not None and give_up()):
                self.reset_nonce()
                return False
            sleep(min(0.5, max(0.05, self.poll_s * 4)))

    # -- sending -----------------------------------------------------------------------------

    def _call(self, reports: list[Report]):
        if len(reports) == 1:
            r = reports[0]
            fn = getattr(self.ledger.functions, SINGLE_METHODS[r.kind])
            if r.kind == "actual":
                return fn(r.wh, r.seq)
            return fn(to_checksum_address(r.account), r.wh, r.seq)
        return self.ledger.functions.report_batch(reports[0].seq, [r.packed() for r in reports])

    def _fees(self) -> dict[str, int]:
        block = self.rpc(self.w3.eth.get_block, "latest")
        base = block.get("baseFeePerGas")
        if base is None:
            price = self.rpc(lambda: self.w3.eth.gas_price)
            if self.max_fee_wei is not None:
                price = min(price, self.max_fee_wei)
            return {"gasPrice": price}
        priority = self.priority_fee_wei
        if priority is None:
            try:
                priority = self.rpc(lambda: self.w3.eth.max_priority_fee)
            except ChainUnavailable:
                raise
            except ChainError:  # not every PoA node implements eth_maxPriorityFeePerGas
                priority = 10**9
        max_fee = 2 * base + priority
        if self.max_fee_wei is not None:
            max_fee = min(max_fee, self.max_fee_wei)
            priority = min(priority, max_fee)
        return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority}

    def sign(self, reports: list[Report]) -> SignedReport:
        """Estimate and sign the transaction for `reports` (consecutive seqs, in order).

        Raises `ReportReverted` when the ledger would refuse it (nothing is spent).
        """
        method = "report_batch" if len(reports) > 1 else SINGLE_METHODS[reports[0].kind]
        return self.sign_call(
            lambda: self._call(reports), method, int(reports[0].seq), len(reports), "unit"
        )

    def sign_call(
        self, make_call: Callable[[], Any], method: str, first_seq: int, count: int, role: str
    ) -> SignedReport:
        """Estimate and sign the contract call `make_call()` returns, with the next nonce.

        Raises `ReportReverted` when the contract would refuse it (nothing is spent), and
        `UnitUnfunded` when the node refuses the estimate for want of gas money."""
        if self.account is None:
            raise ChainError("no signing key loaded")
        self._ensure_poa()
        call = make_call()
        try:
            estimate = self.rpc(call.estimate_gas, {"from": self.unit})
        except ContractLogicError as exc:
            raise ReportReverted(revert_reason(exc)) from None
        except ChainError as exc:
            if "insufficient funds" in str(exc).lower():  # nodes that estimate with a fee
                raise UnitUnfunded(
                    f"{role} {self.unit} has no funds for gas (the node refused the gas "
                    "estimate): fund it with the chain's native coin"
                ) from None
            raise
        nonce = self.next_nonce()
        tx = call.build_transaction(
            {
                "from": self.unit,
                "nonce": nonce,
                "gas": int(estimate * self.gas_margin),
                "chainId": self.chain_id,
                **self._fees(),
            }
        )
        signed = self.account.sign_transaction(tx)
        return SignedReport(
            tx_hash=signed.hash.to_0x_hex(),
            raw=bytes(signed.raw_transaction),
            nonce=nonce,
            method=method,
            first_seq=first_seq,
            count=count,
            gas=int(tx["gas"]),
        )

    def broadcast(self, signed: SignedReport) -> None:
        self.call_started = time.monotonic()
        try:
            self._retrying(self.w3.eth.send_raw_transaction, signed.raw)
        except Web3RPCError as exc:
            message = str(exc).lower()
            if "already known" not in message and "already imported" not in message:
                self.reset_nonce()
                if "insufficient funds" in message:
                    raise self._unfunded(signed) from None
                if "nonce" in message:
                    raise ChainUnavailable(f"nonce conflict: {_short(exc)}") from None
                raise ChainError(f"transaction refused: {_short(exc)}") from None
            # else: the same bytes went out before (a retry after a lost answer)
        except Exception as exc:
            self.reset_nonce()
            if _transient(exc):
                raise ChainUnavailable(f"{self.rpc_url} unreachable: {_short(exc)}") from None
            raise
        finally:
            self.call_started = None
        self._nonce = signed.nonce + 1

    def _unfunded(self, signed: SignedReport) -> UnitUnfunded:
        try:
            balance = f"{self.rpc(self.w3.eth.get_balance, self.unit) / 10**18:.6g}"
        except ChainError:
            balance = "unknown"
        return UnitUnfunded(
            f"unit {self.unit} has no funds for gas (balance {balance}, one report "
            f"transaction needs up to {signed.gas} gas): fund it with the chain's native coin"
        )

    def wait_mined(self, signed: SignedReport, give_up: Callable[[], bool] | None = None) -> Mined:
        """The receipt; `ReportReverted(mined=True)` for status 0, `TxPending` on timeout or
        when `give_up()` turns true (shutdown): the outcome is then settled by reconciliation."""
        deadline = time.monotonic() + self.tx_timeout_s
        while True:
            try:
                receipt = self.rpc(self.w3.eth.get_transaction_receipt, signed.tx_hash)
                break
            except TransactionNotFound:
                pass
            if time.monotonic() >= deadline or (give_up is not None and give_up()):
                self.reset_nonce()
                raise TxPending(signed.tx_hash)
            self._sleep(self.poll_s)
        if receipt["status"] != 1:
            raise ReportReverted("reverted on chain", mined=True, tx_hash=signed.tx_hash)
        return Mined(
            signed.tx_hash,
            int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
            self._over_consumed(receipt),
            None if receipt.get("blockHash") is None else Web3.to_hex(receipt["blockHash"]),
        )

    def _over_consumed_event(self):
        try:
            return self.ledger.events.OverConsumed
        except Exception:  # a ledger ABI without the event (a test double): nothing to see
            return None

    def _over_consumed(self, receipt) -> tuple[OverConsumption, ...]:
        event = self._over_consumed_event()
        if event is None:
            return ()
        ledger = self.ledger.address.lower()
        found = []
        for entry in receipt["logs"]:
            if entry["address"].lower() != ledger:
                continue
            try:
                decoded = event().process_log(entry)
            except Exception:  # another event of the ledger
                continue
            if to_checksum_address(decoded["args"]["unit"]) == self.unit:
                found.append(self._over(decoded))
        return tuple(found)

    @staticmethod
    def _over(entry) -> OverConsumption:
        args = entry["args"]
        return OverConsumption(
            consumer=to_checksum_address(args["consumer"]),
            seq=int(args["seq"]),
            wh=int(args["wh"]),
            tx_hash=entry["transactionHash"].to_0x_hex().lower(),
            block_number=int(entry["blockNumber"]),
        )

    def over_consumed_in(self, tx_hash: str) -> tuple[OverConsumption, ...]:
        """The over-consumption the ledger recorded for this unit in mined `tx_hash` (a
        transaction whose receipt the service did not see: found at reconciliation)."""
        try:
            receipt = self.rpc(self.w3.eth.get_transaction_receipt, tx_hash)
        except TransactionNotFound:
            return ()
        return self._over_consumed(receipt)

    def over_consumption_since(self, from_block: int) -> list[OverConsumption]:
        """Every `OverConsumed` event for this unit from `from_block` to the head."""
        event = self._over_consumed_event()
        if event is None:
            return []
        self._ensure_poa()
        try:
            logs = self.logs(
                lambda a, b: event.get_logs(
                    from_block=a, to_block=b, argument_filters={"unit": self.unit}
                ),
                from_block,
            )
        except ContractLogicError as exc:
            raise ChainError(f"reading the ledger's events failed: {exc}") from None
        return [self._over(entry) for entry in logs]

    def dry_run_reason(self, reports: list[Report]) -> str | None:
        """Why the ledger would refuse `reports` now, or None if it would accept them."""
        try:
            self.rpc(self._call(reports).call, {"from": self.unit})
        except ContractLogicError as exc:
            return revert_reason(exc)
        return None


def _refusing_ranges(fetch: Callable[[int, int], list[T]]) -> Callable[[int, int], list[T]]:
    """`fetch`, with a node's refusal of the range as too wide raised as `_RangeRefused`
    (not retried, not a `ChainError`: `ChainClient.logs` halves the range instead)."""

    def call(first: int, last: int) -> list[T]:
        try:
            return list(fetch(first, last))
        except Web3RPCError as exc:
            if any(text in str(exc).lower() for text in LOG_RANGE_ERRORS):
                raise _RangeRefused(_short(exc)) from None
            raise
        except requests.HTTPError as exc:  # a gateway that refuses with an HTTP 4xx status
            body = exc.response.text if exc.response is not None else ""
            if any(text in body.lower() for text in LOG_RANGE_ERRORS):
                raise _RangeRefused(_short(Exception(body))) from None
            raise

    return call


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) < 200 else text[:197] + "..."
