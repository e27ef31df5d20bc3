"""Pushes an artifact with a subject through the oras Python SDK, pulls it back, and checks it.

Usage: oras_artifact.py HOST:PORT REPO SUBJECT_DIGEST SUBJECT_SIZE
Prints a JSON summary; exits non-zero on any mismatch.
"""
import hashlib
import json
import os
import sys
import tempfile

import oras.oci
import oras.provider
import requests

host, repo, subject_digest, subject_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
registry = oras.provider.Registry(hostname=host, insecure=True)

work = tempfile.mkdtemp()
os.chdir(work)
payload = os.urandom(300_000)
with open("sbom.json", "wb") as f:
    f.write(payload)

subject = oras.oci.Subject(
    mediaType="application/vnd.oci.image.manifest.v1+json", digest=subject_digest, size=subject_size
)
target = f"{host}/{repo}:sbom"
response = registry.push(
    target=target,
    files=["sbom.json:application/spdx+json"],
    subject=subject,
    manifest_annotations={"org.example.kind": "sbom"},
    do_chunked=True,
    chunk_size=64 * 1024,
)
assert response.status_code == 201, response.text
pushed_digest = response.headers["Docker-Content-Digest"]

out = os.path.join(work, "out")
files = registry.pull(target=target, outdir=out)
with open(files[0], "rb") as f:
    pulled = f.read()
assert hashlib.sha256(pulled).hexdigest() == hashlib.sha256(payload).hexdigest(), "artifact bytes differ"

raw = requests.get(
    f"http://{host}/v2/{repo}/manifests/sbom",
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
)
assert raw.status_code == 200, raw.text
assert "sha256:" + hashlib.sha256(raw.content).hexdigest() == pushed_digest, "manifest digest differs"
assert json.loads(raw.content)["subject"]["digest"] == subject_digest

referrers = requests.get(f"http://{host}/v2/{repo}/referrers/{subject_digest}").json()
listed = [m["digest"] for m in referrers["manifests"]]
assert pushed_digest in listed, f"{pushed_digest} not among referrers {listed}"
print(json.dumps({"artifact": pushed_digest, "referrers": listed}))
