"""Pushes an artifact with a subject through the oras Python SDK, pulls it back, and checks it.

Usage: oras_artifact.py HOST:PORT REPO SUBJECT_DIGEST SUBJECT_SIZE
With ORAS_USERNAME and ORAS_PASSWORD set, logs in with them (the registry's token flow).
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
username, password = os.environ.get("ORAS_USERNAME"), os.environ.get("ORAS_PASSWORD")
if username and password:
    registry.auth.set_basic_auth(username, password)


def get(url, headers=None):
    """GET that answers a Bearer challenge with the credentials, as any registry client does."""
    headers = dict(headers or {})
    r = requests.get(url, headers=headers)
    challenge = r.headers.get("WWW-Authenticate", "")
    if r.status_code == 401 and challenge.startswith("Bearer ") and username:
        params = dict(p.split("=", 1) for p in challenge[len("Bearer "):].split(","))
        params = {k: v.strip('"') for k, v in params.items()}
        token = requests.get(
            params["realm"],
            params={"service": params["service"], "scope": params["scope"]},
            auth=(username, password),
        ).json()["token"]
        headers["Authorization"] = f"Bearer {token}"
        r = requests.get(url, headers=headers)
    return r


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

raw = get(
    f"http://{host}/v2/{repo}/manifests/sbom",
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
)
assert raw.status_code == 200, raw.text
assert "sha256:" + hashlib.sha256(raw.content).hexdigest() == pushed_digest, "manifest digest differs"
assert json.loads(raw.content)["subject"]["digest"] == subject_digest

referrers = get(f"http://{host}/v2/{repo}/referrers/{subject_digest}").json()
listed = [m["digest"] for m in referrers["manifests"]]
assert pushed_digest in listed, f"{pushed_digest} not among referrers {listed}"
print(json.dumps({"artifact": pushed_digest, "referrers": listed}))
