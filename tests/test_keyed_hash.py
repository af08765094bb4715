"""newswire.keyed_hash: the same MACs as the standard library's, for every message length."""

import hmac
import os

import pytest

from newswire.keyed_hash import RELEASE_FROM, hmac_sha256


@pytest.mark.parametrize("length", [0, 1, 2046, 2047, 2048, 4094, 4095, 6000, RELEASE_FROM - 1, RELEASE_FROM + 1])
def test_the_mac_is_hmac_sha256_of_the_whole_message(length):
    message = os.urandom(length)
    for key in (b"k", os.urandom(32), os.urandom(100)):  # a key longer than SHA-256's block is hashed first
        assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


def test_a_kept_key_state_is_not_changed_by_its_use():
    key = os.urandom(32)
    first = hmac_sha256(key, b"one")
    hmac_sha256(key, b"two" * 1000)
    assert hmac_sha256(key, b"one") == first
    assert hmac_sha256(key, bytearray(b"one")) == first  # any bytes-like message
