"""testnet/docker-compose.yml is valid and describes the same network as the launcher (testnet/devnet.py)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from node.config import load_config, p2p_seed_from_text
from p2p.host import peer_id_from_seed
from testnet.devnet import DEFAULT_BASE_PORT, build_parser, node_args, node_ports

COMPOSE = Path(__file__).resolve().parents[3] / "testnet" / "docker-compose.yml"
NODES = ["node0", "node1", "node2"]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="Debian's docker-compose is not installed (make test installs it)")
@pytest.mark.parametrize("profile", [None, "gpu", "monitoring"])
def test_compose_file_validates(profile):
    cmd = ["docker-compose", "-f", str(COMPOSE)] + (["--profile", profile] if profile else []) + ["config", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def flag(command, name):
    return [command[i + 1] for i, x in enumerate(command) if x == name]


def test_same_topology_as_the_launcher(compose):
    up = build_parser().parse_args(["up"])
    services = compose["services"]
    default_nodes = [s for s in services if "profiles" not in services[s]]
    assert default_nodes == NODES and up.nodes == len(NODES)
    miners = [s for s in NODES if "--mine" in services[s]["command"]]
    assert len(miners) == up.miners == 1 and miners == ["node0"]
    for i, name in enumerate(NODES):
        svc = services[name]
        cmd = svc["command"]
        launcher = node_args(i, Path("/data"), up.base_port, i < up.miners, "numpy", "devnet", [])
        assert flag(cmd, "--p2p-key-seed") == flag(launcher, "--p2p-key-seed") == [f"devnet-node-{i}"]
        assert svc["hostname"] == name
        p2p, rpc = node_ports(DEFAULT_BASE_PORT, i)
        assert f"127.0.0.1:{rpc}:18445" in svc["ports"] and (i > 0 or f"127.0.0.1:{p2p}:18444" in svc["ports"])
        assert svc["environment"]["POUW_NETWORK"] == "devnet" and up.network == "devnet"
        assert svc["healthcheck"]["test"][-1] == "getblockchaininfo"
    assert node_ports(DEFAULT_BASE_PORT, 0) == (18444, 18445)


def test_bootstrap_peer_id_is_node0s(compose):
    node0 = peer_id_from_seed(p2p_seed_from_text("devnet-node-0"))
    for name in ("node1", "node2", "miner-gpu"):
        (addr,) = flag(compose["services"][name]["command"], "--bootstrap")
        assert addr == f"/dns4/node0/tcp/18444/p2p/{node0}"


def test_services_take_their_settings_from_pouwd_config(compose, tmp_path):
    env = {k: str(v) for k, v in compose["services"]["node1"]["environment"].items()}
    env["POUW_DATADIR"] = str(tmp_path)
    config = load_config(compose["services"]["node1"]["command"], environ=env)
    assert config.rpc_bind == "0.0.0.0" and config.rpc_user == "devnet" and config.p2p_port == 18444
    gpu = compose["services"]["miner-gpu"]
    assert gpu["environment"]["POUW_MINER_BACKEND"] == "cupy"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_prometheus_scrapes_every_node():
    prom = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert {t.split(":")[0] for t in targets} >= set(NODES)
    import json

    dash = json.loads((COMPOSE.parent / "grafana" / "dashboards" / "pouw.json").read_text())
    assert any("pouw_chain_height" in t["expr"] for p in dash["panels"] for t in p["targets"])


def test_dockerfile_is_multistage_nonroot_with_data_volume():
    text = (COMPOSE.parent / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2 and "USER pouw" in text and 'VOLUME ["/data"]' in text
    assert "HEALTHCHECK" in text and "getblockchaininfo" in text
