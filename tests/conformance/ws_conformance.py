#!/usr/bin/env python3
"""RFC 6455 conformance of pieyes' WebSocket server, checked by an independent client: Python's
`websockets` library (its threaded client, and its sans-I/O ClientProtocol where a test needs to
send something a well-behaved client would not). Raw bytes are written to the socket only for
frames no client library will produce (unmasked, reserved bits, unknown opcodes); every byte the
server sends back is still parsed and validated by the library.

Usage: ws_conformance.py [path/to/pieyes]   (default target/release/pieyes)
Starts its own daemon on an ephemeral loopback port with the synthetic camera, prints one
PASS/FAIL line per check and a closing "conformance: N passed, N failed"; exit 1 on any failure.
"""

import base64
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.sync.client import connect
from websockets.uri import parse_uri

TIMEOUT = 5.0
MAX_WS_MESSAGE = 64 * 1024  # src/daemon/mod.rs
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Daemon:
    """The real binary on 127.0.0.1:0, synthetic camera, a private control socket."""

    def __init__(self, binary):
        self.dir = tempfile.TemporaryDirectory(prefix="pieyes-conformance-")
        self.log = []
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--camera", "synthetic", "--size", "320x240",
             "--sensor", "640x360", "--control", os.path.join(self.dir.name, "ctl.sock")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PIEYES_LOG": "debug"}, text=True,
        )
        found = threading.Event()
        self.addr = None

        def pump():
            for line in self.proc.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on http://([^/]+)/", line)
                if m and not found.is_set():
                    self.addr = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(30) or self.addr is None:
            self.proc.kill()
            raise RuntimeError("daemon did not start:\n" + "\n".join(self.log))
        host, port = self.addr.rsplit(":", 1)
        self.hostport = (host, int(port))

    def url(self, path):
        return f"ws://{self.addr}{path}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


class Raw:
    """A socket driven by websockets' sans-I/O ClientProtocol: the library does the handshake and
    parses (and validates) everything the server sends; `send_raw` bypasses it."""

    def __init__(self, daemon, path="/control"):
        self.sock = socket.create_connection(daemon.hostport, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.proto = ClientProtocol(parse_uri(daemon.url(path)))
        self.proto.send_request(self.proto.connect())
        self.flush()
        events = self.read_events()
        assert events and isinstance(events[0], Response), f"no handshake response: {events}"
        self.response = events[0]
        assert self.proto.handshake_exc is None, f"handshake failed: {self.proto.handshake_exc!r}"
        self.pending = events[1:]
        self.eof = False

    def flush(self):
        for data in self.proto.data_to_send():
            if data:
                self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_events(self):
        """At least one event, or [] at EOF."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            events = self.proto.events_received()
            if events:
                return events
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the server")
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.proto.receive_eof()
                return self.proto.events_received()
            self.proto.receive_data(data)

    def next_frame(self):
        if self.pending:
            return self.pending.pop(0)
        events = self.read_events()
        if not events:
            return None
        self.pending = events[1:]
        return events[0]

    def expect_close(self, code):
        """The server's close frame carries `code`, and then it closes the TCP connection."""
        seen = []
        while True:
            f = self.next_frame()
            assert f is not None, f"connection ended without a close frame; frames before: {seen}"
            if f.opcode == Opcode.CLOSE:
                break
            seen.append(f)
        got = Close.parse(f.data)
        assert got.code == code, f"close code {got.code} ({got.reason!r}), expected {code}"
        # The server closes TCP after its close frame (RFC 6455 §7.1.1): EOF, not a hang.
        self.sock.settimeout(TIMEOUT)
        try:
            rest = self.sock.recv(65536)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", f"bytes after the close frame: {rest[:40]!r}"
        return got

    def close(self):
        self.sock.close()


def masked_frame(b0, payload, mask=b"\x12\x34\x56\x78"):
    """A client frame, byte by byte (for what the library refuses to send)."""
    n = len(payload)
    head = bytes([b0])
    if n < 126:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def http_exchange(daemon, request):
    with socket.create_connection(daemon.hostport, timeout=TIMEOUT) as s:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    headers = {}
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


# --- the checks ---------------------------------------------------------------------------------

def t_handshake_rfc_key(d):
    """RFC 6455 §1.3's key gets §1.3's accept value; upgrade headers as required."""
    status, h = http_exchange(
        d,
        f"GET /control HTTP/1.1\r\nHost: {d.addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert status == 101, status
    assert h.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", h
    assert h.get("upgrade", "").lower() == "websocket" and "upgrade" in h.get("connection", "").lower(), h


def t_handshake_library(d):
    """The library's own handshake (random key, its accept check) on /control and /cam0."""
    with connect(d.url("/control"), open_timeout=TIMEOUT, compression=None) as ws:
        assert ws.response.status_code == 101
        key = ws.request.headers["Sec-WebSocket-Key"]
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert ws.response.headers["Sec-WebSocket-Accept"] == want
    with connect(d.url("/cam0"), open_timeout=TIMEOUT) as ws:  # offers permessage-deflate
        assert "Sec-WebSocket-Extensions" not in ws.response.headers, "no extension was negotiated"
        hello = json.loads(ws.recv(timeout=TIMEOUT))
        assert hello["type"] == "hello" and hello["eye"] == 0 and hello["width"] == 320, hello
        frame = ws.recv(timeout=TIMEOUT)
        assert isinstance(frame, bytes) and frame[0] == 1 and frame[2] & 1, "first access unit is a keyframe"


def t_handshake_refusals(d):
    """Wrong version → 426 naming version 13; bad key → 400; plain GET of a WS endpoint → 426."""
    base = f"GET /control HTTP/1.1\r\nHost: {d.addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    status, h = http_exchange(d, base + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert status == 426 and h.get("sec-websocket-version") == "13", (status, h)
    status, _ = http_exchange(d, base + "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert status == 400, status
    status, _ = http_exchange(d, f"GET /control HTTP/1.1\r\nHost: {d.addr}\r\n\r\n")
    assert status == 426, status


def t_text_commands(d):
    """status / help / clock / an unknown verb, and two commands in one message."""
    with connect(d.url("/control"), open_timeout=TIMEOUT) as ws:
        ws.send("status")
        r = ws.recv(timeout=TIMEOUT)
        assert r.startswith("ok {"), r
        assert len(json.loads(r[3:])["eyes"]) == 2
        ws.send("help")
        r = ws.recv(timeout=TIMEOUT)
        assert r.startswith("ok ") and "status" in r and "crop" in r, r
        ws.send("fly away")
        r = ws.recv(timeout=TIMEOUT)
        assert r.startswith("err unknown-command "), r
        ws.send("clock\nhelp\n")
        assert re.fullmatch(r"ok clock=\d+", ws.recv(timeout=TIMEOUT))
        assert ws.recv(timeout=TIMEOUT).startswith("ok ")


def t_fragmented_text(d):
    """A text message the library sends in three fragments is one command."""
    with connect(d.url("/control"), open_timeout=TIMEOUT) as ws:
        ws.send(["st", "at", "us"])
        r = ws.recv(timeout=TIMEOUT)
        assert r.startswith("ok {"), r


def t_fragmented_with_ping_and_split_utf8(d):
    """Fragments with a ping between them (answered at once with a pong), and a UTF-8 character
    split across fragments (valid: only the whole message must be UTF-8)."""
    c = Raw(d)
    c.proto.send_text(b"he", fin=False)
    c.proto.send_ping(b"between")
    c.proto.send_continuation(b"lp", fin=True)
    c.flush()
    f = c.next_frame()
    assert f.opcode == Opcode.PONG and f.data == b"between", f
    f = c.next_frame()
    assert f.opcode == Opcode.TEXT and f.data.startswith(b"ok "), f
    word = "fløj".encode()
    c.proto.send_text(word[:3], fin=False)  # ends inside 'ø'
    c.proto.send_continuation(word[3:], fin=True)
    c.flush()
    f = c.next_frame()
    assert f.opcode == Opcode.TEXT and f.data.decode().startswith('err unknown-command unknown command "fløj"'), f
    c.close()


def t_ping_pong(d):
    """Pongs echo the ping's payload, empty and at the 125-byte maximum."""
    with connect(d.url("/control"), open_timeout=TIMEOUT) as ws:
        for payload in (b"", b"hello", bytes(range(125))):
            assert ws.ping(payload).wait(TIMEOUT), f"no pong for a {len(payload)}-byte ping"
        ws.send("help")
        assert ws.recv(timeout=TIMEOUT).startswith("ok ")


def t_clean_close_echo(d):
    """The client closes with a code: the server echoes it and ends the TCP connection."""
    for code, reason in ((1000, ""), (1001, "tab closed"), (4000, "app-defined")):
        with connect(d.url("/control"), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            t0 = time.monotonic()
            ws.close(code, reason)
            assert time.monotonic() - t0 < 2, "closing handshake took too long"
            rcvd = ws.protocol.close_rcvd
            assert rcvd is not None and rcvd.code == code, f"sent {code}, server answered {rcvd}"
            assert ws.protocol.close_rcvd_then_sent is False, "the client spoke first"


def t_close_without_code(d):
    """An empty close frame is answered with 1000 (RFC 6455 §7.4.1: 1005 is never sent)."""
    c = Raw(d)
    c.proto.send_close()
    c.flush()
    c.expect_close(1000)
    c.close()


def t_invalid_utf8(d):
    """Invalid UTF-8 in a text message → 1007, whole or fragmented."""
    c = Raw(d)
    c.proto.send_text(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")  # a UTF-16 surrogate
    c.flush()
    c.expect_close(1007)
    c.close()
    c = Raw(d)
    c.proto.send_text(b"stat", fin=False)
    c.proto.send_continuation(b"us\xff", fin=True)
    c.flush()
    c.expect_close(1007)
    c.close()


def t_binary_on_control(d):
    """A binary message on /control (a text protocol) → 1003; on a video stream it is ignored."""
    c = Raw(d)
    c.proto.send_binary(b"status")
    c.flush()
    c.expect_close(1003)
    c.close()
    with connect(d.url("/cam0"), open_timeout=TIMEOUT) as ws:
        ws.send(b"\x00\x01")
        for _ in range(3):
            assert ws.recv(timeout=TIMEOUT) is not None  # hello, then video keeps coming


def t_unmasked_frame(d):
    """A client frame without a mask → 1002."""
    c = Raw(d)
    c.send_raw(b"\x81\x06status")
    c.expect_close(1002)
    c.close()


def t_reserved_bits(d):
    """RSV1, RSV2, RSV3 set with no extension negotiated → 1002."""
    for b0 in (0xC1, 0xA1, 0x91):
        c = Raw(d)
        c.send_raw(masked_frame(b0, b"status"))
        c.expect_close(1002)
        c.close()


def t_unknown_opcodes(d):
    """Reserved data (0x3) and control (0xB) opcodes → 1002."""
    for b0 in (0x83, 0x8B):
        c = Raw(d)
        c.send_raw(masked_frame(b0, b""))
        c.expect_close(1002)
        c.close()


def t_bad_control_frames(d):
    """A fragmented ping, a 126-byte ping, a continuation with nothing to continue, a close
    with an invalid code → 1002 each."""
    for raw in (
        masked_frame(0x09, b"p"),
        masked_frame(0x89, bytes(126)),
        masked_frame(0x80, b"x"),
        masked_frame(0x88, struct.pack(">H", 1005)),
        masked_frame(0x88, b"\x03"),
    ):
        c = Raw(d)
        c.send_raw(raw)
        c.expect_close(1002)
        c.close()


def t_oversized(d):
    """A message over the server's 64 KiB limit → 1009, in one frame or across fragments."""

    def refused(message):
        with connect(d.url("/control"), open_timeout=TIMEOUT) as ws:
            try:
                ws.send(message)
                ws.recv(timeout=TIMEOUT)
                raise AssertionError("server kept the connection open")
            except ConnectionClosed:
                pass  # from recv, or from send when the close beat the last fragment
            rcvd = ws.protocol.close_rcvd
            assert rcvd is not None and rcvd.code == 1009, rcvd

    refused("a" * (MAX_WS_MESSAGE + 1))
    refused(["b" * 40_000, "c" * 40_000])
    # Exactly at the limit is fine.
    with connect(d.url("/control"), open_timeout=TIMEOUT) as ws:
        ws.send("help" + " " * (MAX_WS_MESSAGE - 4))
        assert ws.recv(timeout=TIMEOUT).startswith("ok ")


def t_shutdown_going_away(d):
    """SIGTERM: every WebSocket gets close 1001, the daemon exits 0. (Runs last.)"""
    with connect(d.url("/control"), open_timeout=TIMEOUT) as ws:
        ws.send("clock")
        ws.recv(timeout=TIMEOUT)
        d.proc.send_signal(signal.SIGTERM)
        try:
            ws.recv(timeout=TIMEOUT)
            raise AssertionError("still open after SIGTERM")
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and rcvd.code == 1001, f"expected close 1001, got {rcvd}"
    assert d.proc.wait(TIMEOUT) == 0, f"exit status {d.proc.returncode}"


CHECKS = [
    t_handshake_rfc_key,
    t_handshake_library,
    t_handshake_refusals,
    t_text_commands,
    t_fragmented_text,
    t_fragmented_with_ping_and_split_utf8,
    t_ping_pong,
    t_clean_close_echo,
    t_close_without_code,
    t_invalid_utf8,
    t_binary_on_control,
    t_unmasked_frame,
    t_reserved_bits,
    t_unknown_opcodes,
    t_bad_control_frames,
    t_oversized,
    t_shutdown_going_away,
]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/pieyes"
    t0 = time.monotonic()
    d = Daemon(binary)
    print(f"pieyes at {d.addr}; checking with websockets (Python {sys.version.split()[0]})")
    passed = failed = 0
    try:
        for check in CHECKS:
            name = check.__name__[2:]
            t = time.monotonic()
            try:
                check(d)
                passed += 1
                print(f"PASS  {name:<38} {1000 * (time.monotonic() - t):5.0f} ms  {' '.join(check.__doc__.split())}")
            except Exception as e:
                failed += 1
                print(f"FAIL  {name:<40} {type(e).__name__}: {e}")
                traceback.print_exc(limit=3, file=sys.stdout)
    finally:
        d.stop()
    if failed:
        print("--- daemon log (last 40 lines) ---")
        print("\n".join(d.log[-40:]))
    print(f"total {time.monotonic() - t0:.1f} s")
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
