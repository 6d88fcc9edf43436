"""A real TLS client for the tests: Python's ssl module over a socket.

    python tls_client.py PORT CAFILE [--cert C --key K] [--min V] [--max V]
        [--path P] [--count N] [--seconds S] [--close] [--garbage]

Prints one JSON object: ok / failed counts, the TLS version, ALPN and
cipher of the last connection, the serial numbers of the server
certificates seen, the last body and the last error.
"""
import argparse
import json
import socket
import ssl
import time

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("cafile")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--min")
p.add_argument("--max")
p.add_argument("--path", default="/")
p.add_argument("--count", type=int, default=1)
p.add_argument("--seconds", type=float, default=0)
p.add_argument("--keepalive", action="store_true")
a = p.parse_args()

ctx = ssl.create_default_context(cafile=a.cafile)
ctx.set_alpn_protocols(["h2", "http/1.1"])
if a.cert:
    ctx.load_cert_chain(a.cert, a.key)
if a.min:
    ctx.minimum_version = getattr(ssl.TLSVersion, a.min)
if a.max:
    ctx.maximum_version = getattr(ssl.TLSVersion, a.max)


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return int(head.split()[1]), body


out = {"ok": 0, "failed": 0, "serials": [], "error": None}
deadline = time.monotonic() + a.seconds
conn = None
n = 0
while n < a.count or (a.seconds and time.monotonic() < deadline):
    n += 1
    try:
        if conn is None:
            raw = socket.create_connection(("127.0.0.1", a.port), timeout=10)
            conn = ctx.wrap_socket(raw, server_hostname="localhost")
            serial = ssl.DER_cert_to_PEM_cert(conn.getpeercert(True))
            serial = conn.getpeercert()["serialNumber"]
            if serial not in out["serials"]:
                out["serials"].append(serial)
            out["version"] = conn.version()
            out["alpn"] = conn.selected_alpn_protocol()
            out["cipher"] = conn.cipher()[0]
        ka = "keep-alive" if a.keepalive else "close"
        conn.sendall(f"GET {a.path} HTTP/1.1\r\nHost: localhost\r\nConnection: {ka}\r\n\r\n".encode())
        status, body = read_response(conn)
        out["status"] = status
        out["body"] = body.decode("latin-1")
        out["ok" if status == 200 else "failed"] += 1
        if not a.keepalive:
            conn.close()
            conn = None
    except Exception as e:  # noqa: BLE001 - every failure is counted and shown
        out["failed"] += 1
        out["error"] = f"{type(e).__name__}: {e}"
        if conn is not None:
            conn.close()
        conn = None
print(json.dumps(out))
