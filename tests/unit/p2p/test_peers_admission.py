"""Connection admission rules (``p2p.peers``): slots, per-address limits, the loopback exemption.

Pure logic, no libp2p: the host (``p2p.host``) asks ``ConnectionSlots`` before every inbound
handshake; tests/integration/test_p2p_limits.py checks the same rules on real connections.
"""

from __future__ import annotations

import pytest

from p2p.peers import ConnectionLimits, ConnectionSlots, InboundTicket, Refusal, address_key, is_loopback_key


def test_address_keys_count_ipv4_addresses_and_ipv6_slash_64s():
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4-mapped is the IPv4 address
    # One subscriber holds a whole /64: every address in it is one key.
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::1") == "::1"
    assert address_key("127.0.0.1") == "127.0.0.1"
    for junk in (None, "", "localhost", "999.1.1.1", "not an ip"):
        assert address_key(junk) is None


def test_loopback_keys():
    assert is_loopback_key("127.0.0.1") and is_loopback_key("127.5.6.7") and is_loopback_key("::1")
    assert not is_loopback_key("10.0.0.1") and not is_loopback_key("2001:db8::/64")
    assert not is_loopback_key("garbage")


def test_limits_are_checked_and_keep_outbound_slots():
    limits = ConnectionLimits()
    assert (limits.max_connections, limits.outbound_slots, limits.max_inbound_per_ip) == (64, 8, 4)
    assert limits.max_inbound == 56 and not limits.limit_loopback
    assert ConnectionLimits(max_connections=8, outbound_slots=8).max_inbound == 0  # outbound only
    for bad in ({"max_connections": 0}, {"max_connections": 5000}, {"outbound_slots": -1},
                {"outbound_slots": 65}, {"max_inbound_per_ip": 0}):
        with pytest.raises(ValueError):
            ConnectionLimits(**bad)


def test_per_address_rules_skip_loopback_unless_asked():
    assert not ConnectionLimits().per_address("127.0.0.1")
    assert not ConnectionLimits().per_address("::1")
    assert ConnectionLimits().per_address("198.51.100.1")
    assert ConnectionLimits(limit_loopback=True).per_address("127.0.0.1")
    assert not ConnectionLimits(limit_loopback=True).per_address(None)


def fill(slots: ConnectionSlots, hosts: list[str], outbound: int = 0) -> list[InboundTicket | Refusal]:
    return [slots.admit_inbound(h, outbound=outbound) for h in hosts]


def test_inbound_peers_cannot_take_the_outbound_slots():
    """The eclipse attack: many addresses, each under its limit, fill every inbound slot."""
    slots = ConnectionSlots(ConnectionLimits(max_connections=10, outbound_slots=3, max_inbound_per_ip=4))
    got = fill(slots, [f"198.51.100.{i}" for i in range(12)])
    assert all(isinstance(t, InboundTicket) for t in got[:7])
    assert got[7:] == [Refusal.INBOUND_FULL] * 5
    assert slots.inbound == 7  # the 3 outbound slots stay free for our own dials


def test_inbound_also_yields_to_outbound_beyond_the_reserved_slots():
    # Outbound connections may use any free slot; inbound must not take the last ones they hold.
    slots = ConnectionSlots(ConnectionLimits(max_connections=10, outbound_slots=3))
    got = fill(slots, [f"198.51.100.{i}" for i in range(7)], outbound=6)
    assert sum(isinstance(t, InboundTicket) for t in got) == 4
    assert got[4:] == [Refusal.ALL_FULL] * 3


def test_per_address_limit_and_release():
    slots = ConnectionSlots(ConnectionLimits(max_inbound_per_ip=2))
    a1, a2, a3 = fill(slots, ["203.0.113.9"] * 3)
    assert isinstance(a1, InboundTicket) and isinstance(a2, InboundTicket)
    assert a3 is Refusal.ADDRESS_FULL
    assert isinstance(slots.admit_inbound("203.0.113.10", outbound=0), InboundTicket)  # other addresses unaffected
    assert slots.inbound_from("203.0.113.9") == 2 and slots.inbound == 3
    slots.release(a1)
    slots.release(a1)  # idempotent: a double release must not free a second slot
    assert slots.inbound_from("203.0.113.9") == 1 and slots.inbound == 2
    assert isinstance(slots.admit_inbound("203.0.113.9", outbound=0), InboundTicket)
    assert slots.admit_inbound("203.0.113.9", outbound=0) is Refusal.ADDRESS_FULL


def test_an_ipv6_attacker_cannot_spread_over_its_slash_64():
    slots = ConnectionSlots(ConnectionLimits(max_inbound_per_ip=2))
    got = fill(slots, [f"2001:db8:aa:bb::{i:x}" for i in range(1, 5)])
    assert got[2:] == [Refusal.ADDRESS_FULL] * 2
    assert isinstance(slots.admit_inbound("2001:db8:aa:bc::1", outbound=0), InboundTicket)


def test_loopback_is_exempt_from_the_per_address_limit_by_default():
    devnet = ConnectionSlots(ConnectionLimits(max_inbound_per_ip=2))
    assert all(isinstance(t, InboundTicket) for t in fill(devnet, ["127.0.0.1"] * 10))
    assert devnet.inbound == 10  # slots still count
    strict = ConnectionSlots(ConnectionLimits(max_inbound_per_ip=2, limit_loopback=True))
    assert fill(strict, ["127.0.0.1"] * 3)[2] is Refusal.ADDRESS_FULL


def test_loopback_is_exempt_from_slots_never():
    slots = ConnectionSlots(ConnectionLimits(max_connections=3, outbound_slots=1))
    assert fill(slots, ["127.0.0.1"] * 3)[2] is Refusal.INBOUND_FULL


def test_a_banned_address_is_refused_where_per_address_rules_apply():
    slots = ConnectionSlots(ConnectionLimits())
    assert slots.admit_inbound("203.0.113.9", outbound=0, address_banned=True) is Refusal.BANNED_ADDRESS
    assert slots.inbound == 0
    # Loopback: bans stay per peer id (the host refuses the id after the handshake).
    assert isinstance(slots.admit_inbound("127.0.0.1", outbound=0, address_banned=True), InboundTicket)
    strict = ConnectionSlots(ConnectionLimits(limit_loopback=True))
    assert strict.admit_inbound("127.0.0.1", outbound=0, address_banned=True) is Refusal.BANNED_ADDRESS


def test_an_unknown_address_gets_a_slot_but_no_address_count():
    slots = ConnectionSlots(ConnectionLimits(max_inbound_per_ip=1, limit_loopback=True))
    tickets = fill(slots, [None, None])  # e.g. a transport that does not say
    assert all(isinstance(t, InboundTicket) and t.key is None for t in tickets)
    for t in tickets:
        assert isinstance(t, InboundTicket)
        slots.release(t)
    assert slots.inbound == 0
