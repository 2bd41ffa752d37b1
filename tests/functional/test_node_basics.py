"""A real pouwd on regtest: mining, transfers, restarts, clean shutdown."""

import signal

import pytest

from consensus.address import encode_address
from consensus.codec import encode_tx
from consensus.keys import devnet_keypairs
from consensus.networks import REGTEST
from consensus.tx import make_transfer
from tests.functional.harness import RpcFailure, wait_until

KEYS = devnet_keypairs(3)
ADDR = [encode_address(k.address, "preg") for k in KEYS]


def test_generate_and_inspect_blocks(node_factory):
    node = node_factory().start()
    assert node.rpc("getblockcount") == 0
    ids = node.rpc("generatetoaddress", 5, ADDR[1])
    assert len(ids) == 5 and node.rpc("getblockcount") == 5
    assert node.rpc("getbestblockhash") == ids[-1] == node.rpc("getblockhash", 5)
    block = node.rpc("getblock", ids[-1])
    assert block["height"] == 5 and block["previousblockhash"] == ids[-2] and block["confirmations"] == 1
    coinbase = node.rpc("getblock", ids[0], 2)["tx"][0]
    assert coinbase["type"] == "coinbase" and coinbase["to"] == ADDR[1]
    raw = node.rpc("getblock", ids[0], 0)
    header = node.rpc("getblockheader", ids[0], False)
    assert raw.startswith(header) and len(header) == 424
    check = node.rpc("verifycertificate", header, raw[424:424 + 2 * block["certificate_bytes"]])
    assert check["valid"] and check["target_source"] == "chain"
    info = node.rpc("getblockchaininfo")
    assert info["chain"] == "regtest" and info["blocks"] == 5 and info["bestblockhash"] == ids[-1]
    assert node.rpc("getchaintips")[0]["status"] == "active"
    assert node.rpc("verifychain")["ok"]
    mining = node.rpc("getmininginfo")
    assert mining["backend"] == "numpy" and mining["matmuls"] >= 5 and mining["shape"] == {"m": 128, "k": 256, "n": 128}


def test_transfer_changes_balances_after_a_block(node_factory):
    node = node_factory().start()
    before = node.rpc("getaccount", ADDR[0])
    to_before = node.rpc("getaccount", ADDR[2])["balance"]
    tx = make_transfer(KEYS[0], REGTEST.chain_id, before["next_nonce"], KEYS[2].address, 12_345, 1000, b"hi")
    txid = node.rpc("sendrawtransaction", encode_tx(tx).hex())
    assert txid in node.rpc("getrawmempool")
    assert node.rpc("gettransaction", txid)["confirmations"] == 0
    assert node.rpc("getaccount", ADDR[0])["next_nonce"] == before["nonce"] + 1
    with pytest.raises(RpcFailure) as e:  # the same transfer again
        node.rpc("sendrawtransaction", encode_tx(tx).hex())
    assert e.value.code == -26 and "duplicate" in e.value.message
    node.rpc("generatetoaddress", 1, ADDR[1])
    after = node.rpc("getaccount", ADDR[0])
    assert after["balance"] == before["balance"] - 12_345 - 1000 and after["nonce"] == before["nonce"] + 1
    assert node.rpc("getaccount", ADDR[2])["balance"] == to_before + 12_345
    assert node.rpc("getrawmempool") == []
    confirmed = node.rpc("gettransaction", txid)
    assert confirmed["confirmations"] == 1 and confirmed["memo"] == b"hi".hex()
    with pytest.raises(RpcFailure) as e:
        node.rpc("sendrawtransaction", encode_tx(tx).hex())
    assert e.value.code == -27


def test_faucet_pays_on_regtest(node_factory):
    node = node_factory().start()
    fresh = encode_address(b"\x11" * 20, "preg")
    sent = node.rpc("faucet", fresh, 5 * 10**8)
    node.rpc("generatetoaddress", 1, ADDR[1])
    assert node.rpc("getaccount", fresh)["balance"] == 5 * 10**8
    assert node.rpc("gettransaction", sent["txid"])["confirmations"] == 1


def test_mining_node_grows_and_restarts_where_it_left(node_factory):
    node = node_factory("miner", "--mine").start()
    wait_until(lambda: node.rpc("getblockcount") >= 20, what="20 blocks")
    assert node.stop(signal.SIGTERM) == 0
    node.start()
    height = node.rpc("getblockcount")
    assert height >= 20 and node.rpc("verifychain")["ok"]
    wait_until(lambda: node.rpc("getblockcount") > height, what="mining to resume")


def test_stop_rpc_shuts_down_cleanly(node_factory):
    node = node_factory().start()
    node.rpc("generatetoaddress", 2, ADDR[0])
    assert node.rpc("stop") == "pouwd stopping"
    assert node.proc.wait(30) == 0
    node.proc = None  # already gone
    node.stderr.close()
    node.start()
    assert node.rpc("getblockcount") == 2


def test_websocket_reports_new_blocks(node_factory):
    import asyncio

    import aiohttp

    node = node_factory().start()

    async def main():
        async with aiohttp.ClientSession() as s, s.ws_connect(node.url + "/ws") as ws:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["newblock"]})
            sub = (await ws.receive_json(timeout=10))["result"]
            await asyncio.get_running_loop().run_in_executor(None, node.rpc, "generatetoaddress", 1, ADDR[0])
            note = await ws.receive_json(timeout=10)
            assert note["params"]["subscription"] == sub and note["params"]["result"]["height"] == 1

    asyncio.run(main())
