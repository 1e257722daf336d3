#!/usr/bin/env python3
"""Writes the hand-made seed corpus, fuzz/corpus/<target>/<name>: real browser and tool requests,
the RFC 6455 example frames, every control command. Rerun after editing; the files are committed.

ws_frame and control_line inputs start with one configuration byte (see the targets' docs):
ws_frame  0x06 = raw wire bytes, 65535-byte limit;   0x86 = structured frames, same limit
control_line  0x40 = MAX_LINE limit;   0x0f = 16-byte limit
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crlf(*lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- http_request -----------------------------------------------------------------------------
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
http = {
    "chromium_get_index": crlf(
        "GET / HTTP/1.1",
        "Host: 127.0.0.1:8000",
        "Connection: keep-alive",
        'sec-ch-ua: "Chromium";v="156", "Not)A;Brand";v="24"',
        "sec-ch-ua-mobile: ?0",
        'sec-ch-ua-platform: "Linux"',
        "Upgrade-Insecure-Requests: 1",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        "Sec-Fetch-Site: none",
        "Sec-Fetch-Mode: navigate",
        "Sec-Fetch-User: ?1",
        "Sec-Fetch-Dest: document",
        "Accept-Encoding: gzip, deflate, br, zstd",
        "Accept-Language: en-US,en;q=0.9",
    ),
    "firefox_get_viewer_js": crlf(
        "GET /viewer.js?v=2 HTTP/1.1",
        "Host: pieyes.local:8000",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Accept: */*",
        "Accept-Language: en-US,en;q=0.5",
        "Accept-Encoding: gzip, deflate",
        "Referer: http://pieyes.local:8000/",
        "Connection: keep-alive",
        "Sec-Fetch-Dest: script",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
    ),
    "chromium_ws_cam0": crlf(
        "GET /cam0 HTTP/1.1",
        "Host: 127.0.0.1:8000",
        "Connection: Upgrade",
        "Pragma: no-cache",
        "Cache-Control: no-cache",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
        "Upgrade: websocket",
        "Origin: http://127.0.0.1:8000",
        "Sec-WebSocket-Version: 13",
        "Accept-Encoding: gzip, deflate, br, zstd",
        "Accept-Language: en-US,en;q=0.9",
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    ),
    "firefox_ws_control": crlf(
        "GET /control HTTP/1.1",
        "Host: 127.0.0.1:8000",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Accept: */*",
        "Sec-WebSocket-Version: 13",
        "Origin: http://127.0.0.1:8000",
        "Sec-WebSocket-Extensions: permessage-deflate",
        "Sec-WebSocket-Key: " + KEY,
        "Connection: keep-alive, Upgrade",
        "Sec-Fetch-Mode: websocket",
        "Pragma: no-cache",
        "Upgrade: websocket",
    ),
    # RFC 6455 §1.3, the opening handshake example.
    "rfc6455_handshake": crlf(
        "GET /chat HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: " + KEY,
        "Origin: http://example.com",
        "Sec-WebSocket-Protocol: chat, superchat",
        "Sec-WebSocket-Version: 13",
    ),
    "curl_status": crlf("GET /status HTTP/1.1", "Host: 127.0.0.1:8000", "User-Agent: curl/7.88.1", "Accept: */*"),
    "http10_head": crlf("HEAD / HTTP/1.0"),
    "bare_lf": b"GET /index.html HTTP/1.1\nHost: a\n\n",
    "pipelined": crlf("GET /viewer.css HTTP/1.1", "Host: a") + crlf("GET /status HTTP/1.1", "Host: a", "Connection: close"),
    "percent_path": crlf("GET /a%20b/%2e%2e/x%2Fy HTTP/1.1", "Host: a"),
    "post_body": crlf("POST /control HTTP/1.1", "Host: a", "Content-Type: text/plain", "Content-Length: 7") + b"status\n",
    "chunked": crlf("PUT / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
    "absolute_form": crlf("GET http://a/ HTTP/1.1", "Host: a"),
    "obs_text_header": crlf("GET / HTTP/1.1", "Host: a")[:-2] + b"X-Latin1: caf\xe9\r\n\r\n",
    "partial": b"GET /cam1/ HTTP/1.1\r\nHost: a\r\nUpgr",
}
# Attack shapes (make test-hostile): many pipelined requests in one read, and conflicting lengths.
http["pipelined_gets"] = b"GET /controls.js HTTP/1.1\r\nHost: localhost\r\n\r\n" * 200
http["conflicting_content_length"] = crlf("POST / HTTP/1.1", "Host: localhost", "Content-Length: 0", "Content-Length: 5") + b"GET /"
for name, data in http.items():
    write("http_request", name, data)

# --- ws_frame ---------------------------------------------------------------------------------
RFC_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def masked(b0, payload, mask=RFC_MASK):
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n <= 0xFFFF:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


RAW = b"\x06"
ws = {
    # RFC 6455 §5.7 examples, verbatim.
    "rfc_unmasked_hello": bytes.fromhex("810548656c6c6f"),
    "rfc_masked_hello": bytes.fromhex("818537fa213d7f9f4d5158"),
    "rfc_fragmented_hello": bytes.fromhex("010348656c80026c6f"),
    "rfc_unmasked_ping": bytes.fromhex("890548656c6c6f"),
    "rfc_masked_pong": bytes.fromhex("8a8537fa213d7f9f4d5158"),
    "rfc_256_binary": bytes.fromhex("827e0100") + bytes(range(256)),
    "rfc_64k_binary_head": bytes.fromhex("827f0000000000010000") + bytes(32),
    # What a browser sends to /control.
    "control_status": masked(0x81, b"status"),
    "control_two_lines": masked(0x81, b"clock\nhelp\n"),
    "fragmented_with_ping": masked(0x01, b"cr") + masked(0x89, b"ping") + masked(0x00, b"op both 0 0 64 64")
    + masked(0x80, b""),
    "close_1000": masked(0x88, struct.pack(">H", 1000)),
    "close_going_away_reason": masked(0x88, struct.pack(">H", 1001) + b"tab closed"),
    "close_empty": masked(0x88, b""),
    "text_invalid_utf8": masked(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
    "reserved_bits": masked(0xC1, b"x"),
    "unknown_opcode": masked(0x83, b""),
}
for name, data in ws.items():
    write("ws_frame", name, RAW + data)

STRUCT = b"\x86"


def spec(*frames):
    out = b""
    for b0, payload in frames:
        out += bytes([b0, len(payload)]) + payload
    return STRUCT + out


ws_structured = {
    "s_fragments_ping_between": spec((0x01, b"sta"), (0x89, b"p"), (0x00, b"tu"), (0x80, b"s")),
    "s_text_then_close": spec((0x81, b"keyframe"), (0x88, struct.pack(">H", 1000) + b"bye")),
    "s_binary_pong": spec((0x82, bytes(range(40))), (0x8A, b"pong")),
    "s_close_bad_code": spec((0x88, struct.pack(">H", 1005))),
    "s_continuation_first": spec((0x80, b"x")),
    "s_utf8_split_across_fragments": spec((0x01, "é".encode()[:1]), (0x80, "é".encode()[1:])),
}
for name, data in ws_structured.items():
    write("ws_frame", name, data)

# --- control_line -----------------------------------------------------------------------------
FULL = b"\x40"
commands = {
    "status": b"status\n",
    "help": b"help\n",
    "keyframe": b"keyframe\n",
    "clock": b"clock\n",
    "crop_both": b"crop both 576 0 1152 1296\n",
    "crop_eye1_crlf": b"crop 1 0 0 64 64\r\n",
    "crop_usage": b"crop 0 0 0 9 9 9\n",
    "crop_bad_numbers": b"crop 0 -1 0 64 NaN\ncrop 2 0 0 1 1\ncrop 0 0 0 99999999999 64\n",
    "session": b"help\nstatus\r\ncrop 0 100 50 640 360\nkeyframe\nclock\n\n   \nfly away\n",
    "not_utf8": b"status\n\xff\xfe\nhelp\n",
    "unicode_space": "crop\u00a0both 1 2 3 4\n".encode(),
    "no_newline": b"status",
    # Attack shapes (make test-hostile): a flood of lines in one write, wrong tokens in a burst.
    "flood_lines": b"a\n" * 20000 + b"status\n",
    "token_guesses": b"auth wrong-guess\n" * 500 + b"look both 0.1 0\n",
}
for name, data in commands.items():
    write("control_line", name, FULL + data)
write("control_line", "long_line_small_limit", b"\x0f" + b"crop both 576 0 1152 1296\r\nstatus\n")
write("control_line", "limit_plus_cr", b"\x05" + b"status\r\nclock\n")

# --- tls_transport ----------------------------------------------------------------------------
# First byte: configuration (bit 0 --tls only, bit 1 --tls off, bits 2-7 the chunking seed).
# ClientHellos from Python's ssl (OpenSSL) written to memory, no network: TLS 1.3 and 1.2-only.
# They hold random bytes, so a rerun changes these files; any real ClientHello will do.
import ssl


def client_hello(maximum):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="robot.local")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def records(content_type, body, size):
    """`body` cut into TLS records of at most `size` bytes."""
    out = b""
    for i in range(0, len(body), size):
        part = body[i : i + size]
        out += bytes([content_type, 3, 3]) + struct.pack(">H", len(part)) + part
    return out


HELLO13 = client_hello(ssl.TLSVersion.TLSv1_3)
HELLO12 = client_hello(ssl.TLSVersion.TLSv1_2)
GET = crlf("GET / HTTP/1.1", "Host: robot.local:8000")
ALERT_CLOSE = bytes([0x15, 3, 3, 0, 2, 1, 0])
tls = {
    "hello_tls13": b"\x00" + HELLO13,
    "hello_tls12": b"\x00" + HELLO12,
    "hello_tls13_chunked": b"\x5c" + HELLO13,
    "hello_fragmented_records": b"\x00" + records(0x16, HELLO13[5:], 16),
    "hello_truncated": b"\x00" + HELLO13[: len(HELLO13) // 2],
    "hello_twice": b"\x00" + HELLO13 + HELLO13,
    "hello_then_alert": b"\x00" + HELLO13 + ALERT_CLOSE,
    "hello_then_ccs_and_data": b"\x00" + HELLO13 + bytes([0x14, 3, 3, 0, 1, 1]) + records(0x17, bytes(range(64)), 64),
    "handshake_byte_then_garbage": b"\x00\x16" + b"GET / HTTP/1.1\r\n\r\n",
    "plain_get": b"\x00" + GET,
    "plain_get_tls_only": b"\x01" + GET,
    "hello_tls_off": b"\x02" + HELLO13,
    "sslv2_hello_tls_only": b"\x01\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + bytes(37),
}
for name, data in tls.items():
    write("tls_transport", name, data)
