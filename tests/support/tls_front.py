"""A TLS front for the worker's Postgres, for the tests of `sslmode` (the embedded build has no TLS).

It answers a client's SSLRequest with "S" and a self-signed certificate (or takes a plain start-up
message), then relays bytes to the real server over a plain connection. For each connection it
records whether the client spoke TLS. Test-only, loopback only.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_RELAY_IDLE_S = 30.0  # a connection idle this long is dropped: no relay outlives its test by much


class TlsFront:
    def __init__(self, upstream: tuple[str, int], folder: Path) -> None:
        key, cert = folder / "front.key", folder / "front.crt"
        if not (key.exists() and cert.exists()):  # made once per folder: an RSA key takes a while
            _make_certificate(key, cert)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self.server_names: list[str | None] = []  # the name each TLS client sent (SNI); None: none sent
        self._context.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.used_tls: list[bool] = []  # one entry per connection that got past its start
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="tls-front", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(10)
            first = _read_exactly(client, 8)
            tls = first == SSL_REQUEST
            if tls:
                client.sendall(b"S")
                client = self._context.wrap_socket(client, server_side=True)
                first = b""
            self.used_tls.append(tls)
            with socket.create_connection(self._upstream, timeout=10) as upstream:
                upstream.sendall(first)
                relay(client, upstream)
        except (OSError, ssl.SSLError):
            pass  # the client gave up (a failed certificate check does) or the server went away
        finally:
            client.close()


def _make_certificate(key: Path, cert: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=facts-tls-front",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed during start-up")
        data += chunk
    return data


def relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes, or both are idle for a while. One thread per
    connection: an SSL socket must not be read and written from two threads."""
    peers = {client: upstream, upstream: client}
    while True:
        pending = [client] if isinstance(client, ssl.SSLSocket) and client.pending() else []
        readable = pending or select.select(list(peers), [], [], _RELAY_IDLE_S)[0]
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)
