"""pouwd's connection-limit settings (``--max-connections`` and friends; rules in ``p2p.peers``)."""

import pytest

from node.config import ConfigError, load_config


def test_connection_limit_defaults_keep_outbound_slots(tmp_path):
    c = load_config(["--datadir", str(tmp_path)], environ={})
    assert (c.max_connections, c.outbound_slots, c.max_inbound_per_ip, c.limit_loopback) == (64, 8, 4, False)


def test_connection_limits_from_every_source(tmp_path):
    (tmp_path / "pouw.toml").write_text("max_connections = 32\nlimit_loopback = true\n")
    env = {"POUW_OUTBOUND_SLOTS": "4", "POUW_DATADIR": str(tmp_path)}
    c = load_config(["--max-inbound-per-ip", "2"], environ=env)
    assert (c.max_connections, c.outbound_slots, c.max_inbound_per_ip, c.limit_loopback) == (32, 4, 2, True)
    assert load_config(["--datadir", str(tmp_path / "x"), "--limit-loopback"], environ={}).limit_loopback


@pytest.mark.parametrize("args,message", [
    (["--max-connections", "0"], "max_connections"),
    (["--max-connections", "100000"], "max_connections"),
    (["--outbound-slots", "65"], "outbound_slots"),
    (["--max-connections", "4", "--outbound-slots", "5"], "outbound_slots"),
    (["--max-inbound-per-ip", "0"], "max_inbound_per_ip"),
])
def test_bad_connection_limits_name_the_setting(tmp_path, args, message):
    with pytest.raises(ConfigError, match=message):
        load_config(["--datadir", str(tmp_path), *args], environ={})
