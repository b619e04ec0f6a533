"""The Bridge's packed words (titanoboa, in process): the relayer set's epoch and M share the
peer word with the peer and the pause, and a token's flags are copied into its outbound
bucket word. Every governed write must keep the other fields of the word it touches, and the
24-bit epoch must refuse to wrap (a wrapped epoch would revive a retired relayer set)."""

import boa
import pytest

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
