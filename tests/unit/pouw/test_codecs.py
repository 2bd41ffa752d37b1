"""Property tests of the byte codecs: round trips, and only DecodeError escapes a decoder."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pouw.certificate import Certificate, decode_certificate
from pouw.errors import DecodeError, EncodeError, VerificationError
from pouw.header import Header, HeaderPre
from pouw.verify import verify

u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731
b32 = st.binary(min_size=32, max_size=32)

header_pre = st.builds(HeaderPre, u(32), u(64), b32, b32, u(64), u(256), u(64), u(32), u(32), u(32), u(16), u(16))
headers = st.builds(Header, header_pre, b32, b32, u(32), u(32))


@given(headers)
def test_header_round_trip(h):
    raw = h.encode()
    assert len(raw) == 212
    assert Header.decode(raw) == h
    assert HeaderPre.decode(raw[:140]) == h.pre


@given(st.binary(max_size=300))
def test_header_decoder_raises_only_decode_error(data):
    try:
        Header.decode(data)
    except DecodeError:
        assert len(data) != 212


@pytest.mark.parametrize("field,value", [("height", -1), ("target", 1 << 256), ("m", 1 << 32), ("r", 1 << 16)])
def test_header_encoder_rejects_out_of_range_fields(field, value):
    from dataclasses import replace

    pre = HeaderPre(1, 0, bytes(32), bytes(32), 0, 0, 0, 16, 16, 256)
    with pytest.raises(EncodeError):
        replace(pre, **{field: value}).encode()


@given(st.integers(1, 8), st.lists(b32, max_size=5), st.lists(b32, max_size=5), st.data())
def test_certificate_round_trip(k, pa, pb, data):
    a = data.draw(st.binary(min_size=16 * k, max_size=16 * k))
    b = data.draw(st.binary(min_size=16 * k, max_size=16 * k))
    cert = Certificate(a, b, tuple(pa), tuple(pb))
    raw = cert.encode()
    assert decode_certificate(raw, k) == cert


@settings(max_examples=200)
@given(st.binary(max_size=16 * 256 * 2 + 200))
def test_certificate_decoder_raises_only_decode_error(data):
    try:
        decode_certificate(data, 256)
    except DecodeError:
        pass


@settings(max_examples=100)
@given(st.binary(min_size=212, max_size=212), st.binary(max_size=600))
def test_verify_raises_only_verification_error(header, cert):
    with pytest.raises(VerificationError):
        verify(header, cert)
