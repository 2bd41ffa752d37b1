"""The claim-key settings (node/config.py): flags, environment, and the values refused before the node starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, load_config


def load(tmp_path, *argv, environ=None):
    return load_config(["--datadir", str(tmp_path), *argv], environ=environ or {})


def test_claim_flags_and_defaults(tmp_path):
    plain = load(tmp_path)
    assert (plain.claim_key, plain.claim_passphrase_file, plain.claim_index, plain.claim_confirmations) == (
        None, None, 0, 2)
    c = load(tmp_path, "--claim-key", "k.json", "--claim-passphrase-file", "p.txt", "--claim-index", "3",
             "--claim-confirmations", "4")
    assert (c.claim_key, c.claim_passphrase_file, c.claim_index, c.claim_confirmations) == (
        Path("k.json"), Path("p.txt"), 3, 4)
    env = load(tmp_path, environ={"POUW_CLAIM_KEY": "k.json", "POUW_CLAIM_PASSPHRASE_FILE": "p",
                                  "POUW_CLAIM_INDEX": "2"})
    assert env.claim_key == Path("k.json") and env.claim_index == 2


@pytest.mark.parametrize("argv, message", [
    (["--claim-key", "k.json"], "claim_passphrase_file"),
    (["--claim-index", "-1"], "claim_index"),
    (["--claim-confirmations", "0"], "claim_confirmations"),
    (["--claim-confirmations", "101"], "claim_confirmations"),
])
def test_bad_claim_settings_are_refused(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, *argv)
