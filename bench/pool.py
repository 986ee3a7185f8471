#!/usr/bin/env python3
"""Writes a pool of unique, correctly signed LINE webhook requests for wrk.

Each record is one complete raw HTTP/1.1 request (POST PATH, JSON body,
`x-line-signature` = base64(HMAC-SHA256(key = channel secret, data = body)),
as LINE signs). Every event has its own `webhookEventId` (prefix + counter),
so each request is new to line-adapter and takes the durable path, never
the cheap duplicate path. bench/pool.lua sends each record at most once.

All records of a pool have the same length, so pool.lua finds them by
offset. Usage:

    pool.py OUT SECRET PREFIX EVENTS_PER_BODY COUNT PATH

prints the record length.

Why the first message's text has a few filler characters: wrk runs LuaJIT,
whose string interning hashes only four 4-byte windows of a string (start,
end, middle, quarter). Near-identical requests would all hash alike and
loading a pool would take quadratic time. The filler (which both servers
treat as ordinary message text) shifts the content until those windows
cover bytes that differ between requests; the pool is checked for that
before it is written.
"""
import base64
import hashlib
import hmac
import sys

# Same shape as benches/webhook_ingest.rs and LINE's own text message events.
EVENT = (
    '{{"type":"message","mode":"active","timestamp":1700000000000,'
    '"source":{{"type":"user","userId":"U0123456789abcdef0123456789abcdef"}},'
    '"webhookEventId":"{id}","replyToken":"r{id}",'
    '"deliveryContext":{{"isRedelivery":false}},'
    '"message":{{"id":"{id}","type":"text","text":"{text}","quoteToken":"q3Plxr4AgKd"}}}}'
)
FILLER = "Hello from LINE, this is a benchmark message. " * 40
M32 = 0xFFFFFFFF


def rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & M32


def luajit_hash(s: bytes) -> int:
    """LuaJIT 2.1's sparse string hash (lj_str_new), seed 0."""
    n = len(s)
    u32 = lambda i: int.from_bytes(s[i : i + 4], "little")
    h = n
    a = u32(0)
    h ^= u32(n - 4)
    b = u32((n >> 1) - 2)
    h ^= b
    h = (h - rol(b, 14)) & M32
    b = (b + u32((n >> 2) - 1)) & M32
    a ^= h
    a = (a - rol(h, 11)) & M32
    b ^= a
    b = (b - rol(a, 25)) & M32
    h ^= b
    h = (h - rol(b, 16)) & M32
    return h


def request(key: bytes, path: str, prefix: str, per_body: int, n: int, pad: int) -> bytes:
    events = ",".join(
        EVENT.format(id=f"{prefix}{n:09d}{i:02d}", text=("bench " + FILLER[:pad]) if i == 0 else "bench")
        for i in range(per_body)
    )
    body = ('{"destination":"U0123456789abcdef0123456789abcdef","events":[' + events + "]}").encode()
    sig = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest())
    head = (
        f"POST {path} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Line-Signature: {sig.decode()}\r\n"
        "\r\n"
    ).encode()
    return head + body


def choose_pad(key: bytes, path: str, prefix: str, per_body: int, count: int) -> int:
    """Smallest filler length whose sampled windows tell requests apart."""
    for pad in range(0, 1000):
        if all(
            len({luajit_hash(request(key, path, prefix, per_body, n, pad)) for n in range(sample)})
            >= sample * 0.99
            for sample in (min(count, 100), min(count, 2000))
        ):
            return pad
    raise SystemExit("pool.py: no filler length separates the LuaJIT hashes")


def write_pool(out: str, secret: str, prefix: str, per_body: int, count: int, path: str) -> tuple[int, int]:
    """Writes the pool; returns (record length, filler length)."""
    key = secret.encode()
    pad = choose_pad(key, path, prefix, per_body, count)
    length = None
    with open(out, "wb", buffering=1 << 20) as f:
        for n in range(count):
            record = request(key, path, prefix, per_body, n, pad)
            if length is None:
                length = len(record)
            elif len(record) != length:
                raise SystemExit("pool.py: records differ in length")
            f.write(record)
    return length, pad


def main() -> None:
    out, secret, prefix, per_body, count, path = sys.argv[1:7]
    length, pad = write_pool(out, secret, prefix, int(per_body), int(count), path)
    print(length, pad)


if __name__ == "__main__":
    main()
