"""The Bridge's packed words (titanoboa, in process): the relayer set's epoch and M share the
peer word with the peer and the pause, and a token's flags are copied into its outbound
bucket word. Every governed write must keep the other fields of the word it touches, and the
24-bit epoch must refuse to wrap (a wrapped epoch would revive a retired relayer set). The
copies (the peer chain and the pause in each outbound word, the route words of unlock and
cancel) must follow every governed change, and the processed cache in the inbound bucket word
must give the same answers as a plain bitmap for nonces in any order."""

import random

import boa
import pytest
from eth_account import Account

from oracle.bridge_codec import ACTION_CANCEL, ACTION_UNLOCK, Transfer, sign
from tests.fuzz import boa_env

LOCAL, PEER_CHAIN = 31337, 4242
ENT = 10**18
EPOCH_SHIFT, MASK_EPOCH = 224, 2**24 - 1


@pytest.fixture(scope="module")
def world():
    gov = boa.env.generate_address("governance")
    holder = boa.env.generate_address("holder")
    relayers = sorted((boa.env.generate_address(f"relayer{i}") for i in range(3)), key=str.lower)
    bridge = boa_env.deployer("Bridge").deploy(gov, LOCAL)
    token = boa_env.deployer("MockToken").deploy("ENT", 18)
    peer_bridge = boa.env.generate_address("peer bridge")
    peer_token = boa.env.generate_address("peer token")
    token.mint(holder, 1_000 * ENT)
    with boa.env.prank(holder):
        token.approve(bridge.address, 2**256 - 1)
    return {
        "gov": gov,
        "holder": holder,
        "relayers": relayers,
        "bridge": bridge,
        "token": token,
        "peer": (peer_bridge, peer_token),
    }


@pytest.fixture(autouse=True)
def _anchor():
    with boa.env.anchor():
        yield


def _configure(w):
    bridge, (peer_bridge, peer_token) = w["bridge"], w["peer"]
    with boa.env.prank(w["gov"]):
        bridge.set_relayers(w["relayers"], 2)
        bridge.set_peer(PEER_CHAIN, peer_bridge)
        bridge.list_token(w["token"].address, peer_token, True)
        bridge.set_limit(w["token"].address, 0, 100 * ENT, ENT, 10 * ENT)


def _lock(w, amount=ENT):
    with boa.env.prank(w["holder"]):
        return w["bridge"].lock(w["token"].address, amount, PEER_CHAIN, w["holder"])


def test_governed_writes_keep_the_other_fields_of_the_peer_word(world):
    w, bridge = world, world["bridge"]
    _configure(w)
    with boa.env.prank(w["gov"]):
        bridge.set_paused(True)
        bridge.set_peer(PEER_CHAIN + 1, w["peer"][0])  # a new peer keeps the set and the pause
    assert bridge.paused() and bridge.threshold() == 2
    assert all(bridge.is_relayer(r) for r in w["relayers"])
    with boa.env.prank(w["gov"]):
        bridge.set_relayers(w["relayers"][:1], 1)  # a new set keeps the peer and the pause
    assert bridge.paused() and bridge.threshold() == 1
    assert (bridge.peer_chain(), bridge.peer_bridge()) == (PEER_CHAIN + 1, w["peer"][0])
    assert bridge.is_relayer(w["relayers"][0]) and not bridge.is_relayer(w["relayers"][1])
    with boa.env.prank(w["gov"]):
        bridge.set_paused(False)  # the pause keeps everything else
    assert not bridge.paused() and bridge.threshold() == 1
    assert bridge.peer_chain() == PEER_CHAIN + 1


def test_the_epoch_refuses_to_wrap(world):
    w, bridge = world, world["bridge"]
    _configure(w)
    # Put the epoch one below its largest value (slot 0 is `_peer`, as the compiler lays out).
    assert bridge.compiler_data.storage_layout["storage_layout"]["_peer"]["slot"] == 0
    peer = boa.env.get_storage(bridge.address, 0)
    peer = (peer & ~(MASK_EPOCH << EPOCH_SHIFT)) | ((MASK_EPOCH - 1) << EPOCH_SHIFT)
    boa.env.set_storage(bridge.address, 0, peer)
    with boa.env.prank(w["gov"]):
        bridge.set_relayers(w["relayers"], 2)  # the last epoch
        assert bridge.is_relayer(w["relayers"][0]) and bridge.threshold() == 2
        with boa.reverts("bridge: too many relayer sets"):
            bridge.set_relayers(w["relayers"][:1], 1)
    assert bridge.threshold() == 2 and bridge.peer_chain() == PEER_CHAIN


def test_the_bucket_word_keeps_the_flags_and_the_nonce(world):
    w, bridge, token = world, world["bridge"], world["token"]
    _configure(w)
    _lock(w)
    _lock(w)
    assert bridge.next_nonce(token.address) == 2
    with boa.env.prank(w["gov"]):
        bridge.set_limit(token.address, 0, 50 * ENT, ENT, 5 * ENT)  # keeps flags and nonce
    assert bridge.next_nonce(token.address) == 2
    _lock(w)
    assert bridge.limit(token.address, 0).available == 49 * ENT
    with boa.env.prank(w["holder"]), boa.reverts("bridge: not a wrapped token"):
        bridge.burn(token.address, ENT, PEER_CHAIN, w["holder"])
    with boa.env.prank(w["gov"]):
        bridge.delist_token(token.address)
    with boa.reverts("bridge: token not listed"):
        _lock(w)
    assert bridge.next_nonce(token.address) == 3 and not bridge.token_info(token.address).listed
    with boa.env.prank(w["gov"]):
        bridge.list_token(token.address, w["peer"][1], True)  # relisted: same nonce on
    _lock(w)
    assert bridge.next_nonce(token.address) == 4
    assert bridge.locked_transfers(token.address, 0, 10) == [0, 1, 2, 3]
    assert token.balanceOf(bridge.address) == 4 * ENT


def test_the_outbound_word_copies_follow_the_peer_and_the_pause(world):
    # lock and burn read the peer chain and the pause from the token's outbound word: every
    # governed change of `_peer` after the listing must reach it, and a new listing gets both.
    w, bridge, token = world, world["bridge"], world["token"]
    _configure(w)
    _lock(w)
    with boa.env.prank(w["gov"]):
        bridge.set_peer(PEER_CHAIN + 1, w["peer"][0])
    with boa.env.prank(w["holder"]), boa.reverts("bridge: wrong destination"):
        bridge.lock(token.address, ENT, PEER_CHAIN, w["holder"])
    with boa.env.prank(w["holder"]):
        bridge.lock(token.address, ENT, PEER_CHAIN + 1, w["holder"])
    with boa.env.prank(w["gov"]):
        bridge.set_paused(True)
    with boa.env.prank(w["holder"]), boa.reverts("bridge: paused"):
        bridge.lock(token.address, ENT, PEER_CHAIN + 1, w["holder"])
    second = boa_env.deployer("MockToken").deploy("EEUR", 6)
    with boa.env.prank(w["gov"]):
        bridge.list_token(second.address, boa.env.generate_address("peer eeur"), True)
        bridge.set_limit(second.address, 0, 100 * ENT, ENT, 10 * ENT)
    second.mint(w["holder"], 10 * ENT)
    with boa.env.prank(w["holder"]):
        second.approve(bridge.address, 2**256 - 1)
        with boa.reverts("bridge: paused"):  # listed while paused: born paused
            bridge.lock(second.address, ENT, PEER_CHAIN + 1, w["holder"])
    with boa.env.prank(w["gov"]):
        bridge.set_paused(False)
    with boa.env.prank(w["holder"]):
        bridge.lock(second.address, ENT, PEER_CHAIN + 1, w["holder"])
        bridge.lock(token.address, ENT, PEER_CHAIN + 1, w["holder"])
    assert (bridge.next_nonce(token.address), bridge.next_nonce(second.address)) == (3, 1)
    assert bridge.limit(token.address, 0).available == 97 * ENT
    assert bridge.locked_transfers(token.address, 0, 10) == [0, 1, 2]


RELAYER_KEY = "0x" + "5a" * 32


def _inbound(w, nonce, bridge=None, chain=PEER_CHAIN, amount=ENT):
    peer_bridge, peer_token = w["peer"]
    return Transfer(
        chain, bridge or peer_bridge, nonce, LOCAL, w["holder"], w["holder"], peer_token, amount, 1
    )


def _attest(w, transfer, action=ACTION_UNLOCK):
    chain_id = boa.env.evm.patch.chain_id
    return sign(chain_id, w["bridge"].address, transfer.id(), action, [RELAYER_KEY])


def _unlock(w, transfer):
    return w["bridge"].unlock(tuple(transfer), _attest(w, transfer))


def _configure_inbound(w):
    # One relayer whose key the test holds; the bridge holds tokens to release.
    _configure(w)
    bridge, token = w["bridge"], w["token"]
    with boa.env.prank(w["gov"]):
        bridge.set_relayers([Account.from_key(RELAYER_KEY).address], 1)
        bridge.set_limit(token.address, 1, 10**6 * ENT, ENT, 10**6 * ENT)
    token.mint(bridge.address, 10**3 * ENT)


def test_the_processed_cache_is_a_bitmap_for_nonces_in_any_order(world):
    w, bridge, token = world, world["bridge"], world["token"]
    _configure_inbound(w)
    # In order through two window moves, then late nonces of earlier windows, a jump far
    # ahead (the cache skips windows), and nonces of the skipped windows.
    order = [*range(0, 70), 3 + 256, 5, 130, 64 + 63, 600, 129, 131, 2, 599, 256, 1000]
    order += random.Random(12).sample(range(70, 1100), 60)
    done = set()
    for nonce in dict.fromkeys(order):
        if nonce in done:
            continue
        _unlock(w, _inbound(w, nonce))
        done.add(nonce)
        with boa.reverts("bridge: already processed"):
            _unlock(w, _inbound(w, nonce))
    for nonce in random.Random(13).sample(sorted(done), 20):
        with boa.reverts("bridge: already processed"):
            _unlock(w, _inbound(w, nonce))
    assert [n for n in range(1200) if bridge.is_processed(token.address, n)] == sorted(done)
    # Each nonce released once, no more: the holder got exactly what the bridge let go.
    assert token.balanceOf(w["holder"]) == (1_000 + len(done)) * ENT
    assert token.balanceOf(bridge.address) == (1_000 - len(done)) * ENT


def test_cancel_goes_through_the_processed_cache(world):
    w, bridge, token = world, world["bridge"], world["token"]
    _configure_inbound(w)
    _unlock(w, _inbound(w, 1))
    _unlock(w, _inbound(w, 70))  # the cache moves to nonces 64..127
    for nonce in (2, 71):  # an earlier window, and the cached one
        transfer = _inbound(w, nonce)
        with boa.env.prank(w["holder"]):  # the recipient may cancel at once
            bridge.cancel(tuple(transfer), _attest(w, transfer, ACTION_CANCEL))
        with boa.reverts("bridge: already processed"):
            _unlock(w, transfer)
    assert [n for n in range(200) if bridge.is_processed(token.address, n)] == [1, 2, 70, 71]


def test_routes_follow_the_peer_the_set_and_the_pause(world):
    w, bridge = world, world["bridge"]
    _configure_inbound(w)
    _unlock(w, _inbound(w, 0))
    new_bridge = boa.env.generate_address("new peer bridge")
    with boa.env.prank(w["gov"]):
        bridge.set_peer(PEER_CHAIN, new_bridge)
    with boa.reverts("bridge: wrong source bridge"):  # the old peer's route is gone
        _unlock(w, _inbound(w, 1))
    _unlock(w, _inbound(w, 1, bridge=new_bridge))
    with boa.env.prank(w["gov"]):
        bridge.set_peer(PEER_CHAIN + 1, new_bridge)
    with boa.reverts("bridge: wrong source chain"):
        _unlock(w, _inbound(w, 2, bridge=new_bridge))
    _unlock(w, _inbound(w, 2, bridge=new_bridge, chain=PEER_CHAIN + 1))
    with boa.env.prank(w["gov"]):
        bridge.set_paused(True)
    with boa.reverts("bridge: paused"):
        _unlock(w, _inbound(w, 3, bridge=new_bridge, chain=PEER_CHAIN + 1))
    with boa.env.prank(w["gov"]):
        bridge.set_paused(False)
        bridge.set_relayers(w["relayers"], 2)  # a new set: the test's key is retired
    with boa.reverts("bridge: fewer than M signatures"):
        _unlock(w, _inbound(w, 3, bridge=new_bridge, chain=PEER_CHAIN + 1))
    with boa.env.prank(w["gov"]):
        bridge.set_relayers([Account.from_key(RELAYER_KEY).address], 1)
        bridge.delist_token(w["token"].address)
    with boa.reverts("bridge: token not listed"):
        _unlock(w, _inbound(w, 3, bridge=new_bridge, chain=PEER_CHAIN + 1))
    with boa.env.prank(w["gov"]):
        bridge.list_token(w["token"].address, w["peer"][1], True)
    _unlock(w, _inbound(w, 3, bridge=new_bridge, chain=PEER_CHAIN + 1))


def test_the_token_list_and_the_nonce_field_are_bounded(world):
    w, bridge, token = world, world["bridge"], world["token"]
    _configure(w)
    mock = boa_env.deployer("MockToken")
    with boa.env.prank(w["gov"]):
        for i in range(bridge.MAX_TOKENS() - 1):  # the fixture's token is the first
            bridge.list_token(mock.deploy("T", 18).address, boa.env.generate_address(f"p{i}"), True)
        with boa.reverts("bridge: too many tokens"):
            bridge.list_token(mock.deploy("T", 18).address, boa.env.generate_address("p"), True)
        bridge.delist_token(token.address)
        bridge.list_token(token.address, w["peer"][1], True)  # a relisting keeps its place
    # The 40-bit nonce field refuses to wrap into the peer chain's copy above it.
    slot = boa_env.Slots(bridge).slot("_bucket", token.address)  # [token][0]: the base slot
    word = boa.env.get_storage(bridge.address, slot)
    boa.env.set_storage(bridge.address, slot, word | ((2**40 - 1) << 136))
    with boa.reverts("bridge: nonces exhausted"):
        _lock(w)
