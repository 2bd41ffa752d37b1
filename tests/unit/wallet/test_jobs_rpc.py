"""The client's blob calls of paid jobs over real loopback HTTP: ``PUT /blobs?claim_of=`` and a bounded download."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wallet.rpc import BlobTooLarge, RpcClient


@pytest.fixture
def blob_server():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, body: bytes, ctype: str = "application/json"):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            seen.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(json.dumps({"blob": "ab" * 32, "root_c": "cd" * 32, "h_c": "ef" * 32}).encode())

        def do_GET(self):
            seen.append(self.path)
            self._send(b"x" * 5000, "application/octet-stream")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield RpcClient(f"http://127.0.0.1:{server.server_address[1]}/"), seen
    server.shutdown()
    server.server_close()


def test_claim_upload_names_the_offer(blob_server):
    client, seen = blob_server
    answer = client.put_blob(b"npy bytes", claim_of="12" * 32)
    assert answer["root_c"] == "cd" * 32 and seen == ["/blobs?claim_of=" + "12" * 32]
    client.put_blob(b"npy bytes")
    assert seen[-1] == "/blobs"


def test_download_is_bounded(blob_server):
    client, _ = blob_server
    assert len(client.get_blob("00" * 32, max_bytes=5000)) == 5000
    with pytest.raises(BlobTooLarge, match="exceeds 4999 bytes"):
        client.get_blob("00" * 32, max_bytes=4999)
    assert len(client.get_blob("00" * 32)) == 5000
