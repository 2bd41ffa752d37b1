"""pouwd configuration: flags > POUW_* environment > pouw.toml > preset defaults, with clear errors."""

import pytest

from node.config import ConfigError, load_config


def test_defaults_follow_the_network(tmp_path):
    c = load_config(["--datadir", str(tmp_path)], environ={})
    assert c.network == "devnet" and c.rpc_port == 18445 and c.p2p_port == 18444
    assert c.rpc_bind == "127.0.0.1" and c.mine is False and c.miner_shape is None
    r = load_config(["--network", "regtest", "--datadir", str(tmp_path)], environ={})
    assert r.rpc_port == 19445


def test_precedence_flags_over_env_over_file(tmp_path):
    (tmp_path / "pouw.toml").write_text(
        'rpc_port = 1111\nmine = true\nminer_shape = "256,512,128"\nlog_level = "debug"\n')
    env = {"POUW_RPC_PORT": "2222", "POUW_DATADIR": str(tmp_path)}
    c = load_config([], environ=env)
    assert c.rpc_port == 2222 and c.mine is True and c.miner_shape == (256, 512, 128) and c.log_level == "debug"
    c = load_config(["--rpc-port", "3333"], environ=env)
    assert c.rpc_port == 3333
    c = load_config(["--miner-shape", "16,256,16", "--datadir", str(tmp_path)], environ={})
    assert c.miner_shape == (16, 256, 16)


def test_connect_lists_from_every_source(tmp_path):
    env = {"POUW_CONNECT": "/ip4/127.0.0.1/tcp/1/p2p/a, /ip4/127.0.0.1/tcp/2/p2p/b"}
    c = load_config(["--datadir", str(tmp_path)], environ=env)
    assert c.connect == ["/ip4/127.0.0.1/tcp/1/p2p/a", "/ip4/127.0.0.1/tcp/2/p2p/b"]
    c = load_config(["--datadir", str(tmp_path), "--connect", "x", "--connect", "y"], environ=env)
    assert c.connect == ["x", "y"]


@pytest.mark.parametrize("args,env,toml,message", [
    (["--miner-shape", "1,2"], {}, None, "M,K,N"),
    (["--miner-shape", "100,256,16"], {}, None, "multiple of 16"),
    ([], {"POUW_RPC_PORT": "eighty"}, None, "rpc_port from the environment"),
    ([], {"POUW_MINE": "maybe"}, None, "boolean"),
    ([], {}, "rpc_prot = 1\n", "unknown settings rpc_prot"),
    ([], {}, "rpc_port = \n", "pouw.toml"),
    (["--rpc-port", "70000"], {}, None, "TCP port"),
])
def test_bad_values_name_the_setting(tmp_path, args, env, toml, message):
    if toml is not None:
        (tmp_path / "pouw.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(["--datadir", str(tmp_path), *args], environ=env)


def test_pouwd_reports_config_errors_with_exit_2(tmp_path, capsys):
    from node.daemon import main

    assert main(["--datadir", str(tmp_path), "--miner-shape", "nope"]) == 2
    assert "configuration error" in capsys.readouterr().err
