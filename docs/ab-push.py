"""A/B of two depot-registry binaries on monolithic and chunked pushes (docs/performance.md).

Usage: SIZE_MIB=256 CHUNK_MIB=4 ROUNDS=4 python3 docs/ab-push.py OLD_BINARY NEW_BINARY

Starts each binary on the embedded default in its own directory under /var/tmp, then, round by
round and binary by binary, pushes SIZE_MIB MiB once monolithically and once in CHUNK_MIB MiB
PATCHes (each blob different, so nothing is deduplicated), with a `sync` after every push, from
memory over one keep-alive connection (the client is not the limit). Prints MiB/s per push.
"""
import hashlib
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
SIZE = int(os.environ.get("SIZE_MIB", "1024")) * MiB
CHUNK = int(os.environ.get("CHUNK_MIB", "16")) * MiB
base = bytearray(os.urandom(SIZE))

def start(binary):
    d = tempfile.mkdtemp(dir="/var/tmp")
    p = subprocess.Popen([binary, "serve", "--no-auth", "--listen", "127.0.0.1:0", "--data-dir", d],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        m = re.search(r"listening on http://([0-9.:]+)", line)
        if m:
            import threading; threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1), d
    raise SystemExit("no listen line")

def push(addr, mode, n):
    base[0:8] = n.to_bytes(8, "little") ; data = memoryview(base)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    host, port = addr.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=600)
    t = time.perf_counter()
    if mode == "mono":
        c.request("POST", f"/v2/ab/x/blobs/uploads/?digest={digest}", body=data, headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse(); r.read(); assert r.status == 201, r.status
    else:
        c.request("POST", "/v2/ab/x/blobs/uploads/", headers={"Content-Length": "0"})
        r = c.getresponse(); r.read(); loc = r.getheader("Location")
        for off in range(0, SIZE, CHUNK):
            end = min(off + CHUNK, SIZE)
            c.request("PATCH", loc, body=data[off:end], headers={"Content-Range": f"{off}-{end-1}", "Content-Type": "application/octet-stream"})
            r = c.getresponse(); r.read(); assert r.status == 202, r.status
            loc = r.getheader("Location")
        c.request("PUT", loc + ("&" if "?" in loc else "?") + f"digest={digest}", headers={"Content-Length": "0"})
        r = c.getresponse(); r.read(); assert r.status == 201, (r.status)
    return SIZE / MiB / (time.perf_counter() - t)

bins = sys.argv[1:]
servers = {b: start(b) for b in bins}
res = {(b, m): [] for b in bins for m in ("mono", "chunked")}
n = 0
for rnd in range(int(os.environ.get("ROUNDS", "3"))):
    for b in bins:
        for m in ("mono", "chunked"):
            n += 1
            res[(b, m)].append(push(servers[b][1], m, n))
            subprocess.run(["sync"])
for (b, m), v in res.items():
    print(f"{b:45s} {m:8s} " + " ".join(f"{x:6.0f}" for x in v) + f"  best {max(v):.0f} MiB/s")
for p, _, d in servers.values():
    p.kill(); subprocess.run(["rm", "-rf", d])
