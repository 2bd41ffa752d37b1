"""The /explorer page, loaded in headless Chromium against a running node, shows the current height."""

import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--virtual-time-budget=8000"]


def chromium(tmp_path, *args):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_explorer_shows_height_and_block_certificate(node_factory, tmp_path):
    node = node_factory().start()
    ids = node.rpc("generatetoaddress", 3, "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm")
    height = node.rpc("getblockcount")
    status, page = node.http("GET", "/explorer")
    assert status == 200 and b"pouw explorer" in page

    dom = chromium(tmp_path, "--dump-dom", f"{node.url}/explorer#block={ids[-1]}").stdout
    shown = re.search(r'id="height"[^>]*>(\d+)<', dom)
    assert shown and int(shown.group(1)) == height, dom[:2000]
    assert ids[-1] in dom  # the block detail: full hash
    assert re.search(r'class="ok">valid</span> in [0-9.]+ ms', dom)  # its certificate checked
    assert re.search(r'<div id="error"></div>', dom)  # no error shown

    shot = tmp_path / "explorer.png"
    chromium(tmp_path, "--window-size=1280,900", f"--screenshot={shot}", f"{node.url}/explorer")
    assert shot.exists() and shot.stat().st_size > 10_000
