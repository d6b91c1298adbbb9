"""A small in-memory registry speaking the v2 API (basic or bearer auth, Range, chunked uploads, mounts, tags
lists with Link pagination), with hooks to misbehave: tampered blobs, connections cut mid-blob or mid-PATCH,
slow or watched blob downloads. Plus helpers to publish test images."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from tests.unit.engine.test_image_harness import build_tar, entry

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER_TYPES = {"gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "none": "application/vnd.oci.image.layer.v1.tar"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    """State of the fake; serve() runs it on 127.0.0.1 (or in whatever netns the calling thread is in)."""

    auth: str = ""                              # "", "basic" or "bearer"
    users: dict = field(default_factory=lambda: {"alice": "secret"})
    blobs: dict = field(default_factory=dict)   # digest -> bytes
    repo_blobs: dict = field(default_factory=dict)   # repo -> set of digests
    manifests: dict = field(default_factory=dict)    # repo -> {tag or digest: (bytes, media type)}
    tampered: dict = field(default_factory=dict)     # digest -> bytes served instead
    cut_once: set = field(default_factory=set)       # digests whose first GET is cut after half the bytes
    no_range: bool = False
    tags_page: int = 0                               # > 0: tags/list answers this many per page, Link to the next
    fail_patch_once: int = 0                         # PATCHes to cut after keeping half their bytes
    blob_hook: object = None                         # called as hook(digest, phase) with "start" and "end" of a GET
    blob_rate: float = 0.0                           # > 0: bytes per second for each blob GET
    requests: list = field(default_factory=list)     # (method, path) in order
    ranges: list = field(default_factory=list)       # (digest, start offset) of every ranged blob GET
    uploads: dict = field(default_factory=dict)
    tokens: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serve(self) -> "FakeRegistry":
        fake = self

        class Handler(_Handler):
            registry = fake

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- content -----------------------------------------------------------------------------------------------

    def add_blob(self, repo: str, data: bytes) -> str:
        d = digest_of(data)
        with self.lock:
            self.blobs[d] = data
            self.repo_blobs.setdefault(repo, set()).add(d)
        return d

    def add_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        d = digest_of(body)
        with self.lock:
            m = self.manifests.setdefault(repo, {})
            m[ref] = (body, media_type)
            m[d] = (body, media_type)
        return d

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p in self.requests if m == method and re.search(pattern, p))


class _Handler(http.server.BaseHTTPRequestHandler):
    registry: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        # A TLS ClientHello (an https attempt at an insecure registry): drop it, as a plain server would fail it.
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":
            return
        super().handle()

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})},
                   head=self.command == "HEAD")

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self) -> bool:
        reg = self.registry
        if not reg.auth:
            return True
        authz = self.headers.get("Authorization") or ""
        if reg.auth == "basic" and authz.startswith("Basic "):
            user, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
            return reg.users.get(user) == pw
        if reg.auth == "bearer" and authz.startswith("Bearer "):
            return authz[7:] in reg.tokens
        return False

    def _challenge(self) -> None:
        reg = self.registry
        if reg.auth == "basic":
            header = 'Basic realm="fake"'
        else:
            header = f'Bearer realm="http://{reg.host}/token",service="fake-registry"'
        self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": header})

    def _token(self, query: dict) -> None:
        authz = self.headers.get("Authorization") or ""
        if authz.startswith("Basic "):
            user, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
            if self.registry.users.get(user) != pw:
                self._send(401, json.dumps({"details": "incorrect username or password"}).encode())
                return
        elif "scope" not in query:
            self._send(401, json.dumps({"details": "login needs credentials"}).encode())
            return
        token = uuid.uuid4().hex
        self.registry.tokens.add(token)
        self._send(200, json.dumps({"token": token}).encode(), {"Content-Type": "application/json"})

    def _route(self) -> None:
        reg = self.registry
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        path = parts.path
        with reg.lock:
            reg.requests.append((self.command, self.path))
        if path == "/token":
            return self._token(query)
        if not self._authorized():
            self._body()
            return self._challenge()
        if path == "/v2/":
            return self._send(200, b"{}")
        m = re.fullmatch(r"/v2/(.+)/tags/list", path)
        if m and self.command == "GET":
            return self._tags(m.group(1), query)
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/(.+)", path)
        if m and m.group(2) == "manifests":
            return self._manifest(m.group(1), m.group(3))
        if m and m.group(2) == "blobs" and not m.group(3).startswith("uploads/"):
            return self._blob(m.group(1), m.group(3))
        m = re.fullmatch(r"/v2/(.+)/blobs/uploads/(.*)", path)
        if m:
            return self._upload(m.group(1), m.group(2), query)
        self._error(404, "NOT_FOUND", "not found")

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = lambda self: self._route()

    def _manifest(self, repo: str, ref: str) -> None:
        reg = self.registry
        if self.command == "PUT":
            body = self._body()
            ctype = self.headers.get("Content-Type") or ""
            d = reg.add_manifest(repo, ref, body, ctype)
            return self._send(201, b"", {"Docker-Content-Digest": d, "Location": f"/v2/{repo}/manifests/{d}"})
        if repo not in reg.manifests:
            return self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
        found = reg.manifests[repo].get(ref)
        if found is None:
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        body, ctype = found
        real = digest_of(body)
        body = reg.tampered.get(real, body)
        self._send(200, body, {"Content-Type": ctype, "Docker-Content-Digest": real}, head=self.command == "HEAD")

    def _tags(self, repo: str, query: dict) -> None:
        reg = self.registry
        if repo not in reg.manifests:
            return self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
        tags = sorted(t for t in reg.manifests[repo] if not t.startswith("sha256:"))
        n = int(query["n"][0]) if "n" in query else reg.tags_page
        last = query.get("last", [""])[0]
        tags = [t for t in tags if t > last]
        headers = {"Content-Type": "application/json"}
        if n and len(tags) > n:
            tags = tags[:n]
            headers["Link"] = f'</v2/{repo}/tags/list?last={tags[-1]}&n={n}>; rel="next"'
        self._send(200, json.dumps({"name": repo, "tags": tags}).encode(), headers)

    def _blob(self, repo: str, digest: str) -> None:
        reg = self.registry
        if digest not in reg.repo_blobs.get(repo, set()):
            return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        data = reg.tampered.get(digest, reg.blobs[digest])
        if self.command == "HEAD":
            return self._send(200, data, {"Docker-Content-Digest": digest}, head=True)
        start = 0
        rng = self.headers.get("Range")
        if rng and not reg.no_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            with reg.lock:
                reg.ranges.append((digest, start))
        with reg.lock:
            cut = digest in reg.cut_once
            reg.cut_once.discard(digest)
        part = memoryview(data)[start:]   # no copy: the memory test measures the client, not the fake
        if reg.blob_hook:
            reg.blob_hook(digest, "start")
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(part)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if cut:
            self.wfile.write(part[:len(part) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            if reg.blob_rate:
                step = max(1, int(reg.blob_rate / 20))
                for i in range(0, len(part), step):
                    self.wfile.write(part[i:i + step])
                    self.wfile.flush()
                    time.sleep(step / reg.blob_rate)
            else:
                self.wfile.write(part)
        except OSError:
            self.close_connection = True   # the client went away (a cancelled pull)
            return
        if reg.blob_hook:
            reg.blob_hook(digest, "end")

    def _upload(self, repo: str, uid: str, query: dict) -> None:
        reg = self.registry
        if self.command == "POST" and not uid:
            self._body()
            if "mount" in query:
                d, src = query["mount"][0], query.get("from", [""])[0]
                if d in reg.repo_blobs.get(src, set()):
                    reg.repo_blobs.setdefault(repo, set()).add(d)
                    return self._send(201, b"", {"Location": f"/v2/{repo}/blobs/{d}", "Docker-Content-Digest": d})
            uid = uuid.uuid4().hex
            reg.uploads[uid] = b""
            return self._send(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{uid}", "Range": "0-0",
                                         "Docker-Upload-UUID": uid})
        if uid not in reg.uploads:
            return self._error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        if self.command == "GET":
            n = len(reg.uploads[uid])
            return self._send(204, b"", {"Range": f"0-{max(n - 1, 0)}", "Location": f"/v2/{repo}/blobs/uploads/{uid}"})
        if self.command == "PATCH":
            rng = self.headers.get("Content-Range")
            if rng and int(rng.split("-")[0]) != len(reg.uploads[uid]):
                self._body()
                return self._error(416, "BLOB_UPLOAD_INVALID", "bad range")
            body = self._body()
            with reg.lock:
                fail = reg.fail_patch_once > 0
                reg.fail_patch_once -= 1 if fail else 0
            if fail:
                # The connection drops after the registry stored part of the chunk: the client must ask the
                # session where it stands and send the rest.
                reg.uploads[uid] += body[:len(body) // 2]
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            reg.uploads[uid] += body
            n = len(reg.uploads[uid])
            return self._send(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{uid}", "Range": f"0-{n - 1}"})
        if self.command == "PUT":
            data = reg.uploads.pop(uid) + self._body()
            want = query["digest"][0]
            if digest_of(data) != want:
                return self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            reg.add_blob(repo, data)
            return self._send(201, b"", {"Location": f"/v2/{repo}/blobs/{want}", "Docker-Content-Digest": want})
        self._error(405, "UNSUPPORTED", "unsupported")


# -- publishing test images ------------------------------------------------------------------------------------

def layer_tar(marker: bytes) -> bytes:
    """A one-file layer: /etc/marker holding marker (plus /bin/sh so it looks like a rootfs)."""
    return build_tar(entry("bin/"), entry("etc/"), entry("etc/marker", marker),
                     entry("bin/sh", b"#!fake\n", mode=0o755))


def compress(raw: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    return raw


def _layer_type(how: str, oci: bool) -> str:
    if how == "gzip" and oci:
        return "application/vnd.oci.image.layer.v1.tar+gzip"
    return LAYER_TYPES[how]


def image_manifest(layers: list[tuple[bytes, str]], arch: str = "amd64", os_name: str = "linux",
                   oci: bool = False) -> tuple[bytes, bytes, list[bytes]]:
    """Build (config bytes, manifest bytes, layer blobs) for layers given as (uncompressed tar, compression)."""
    blobs = [compress(raw, how) for raw, how in layers]
    config = json.dumps({"architecture": arch, "os": os_name, "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(raw) for raw, _ in layers]},
                         "history": [{"created": "2024-01-01T00:00:00Z"} for _ in layers]}).encode()
    use_oci = oci or any(how != "gzip" for _, how in layers)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST if use_oci else MT_DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if use_oci
                   else "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": _layer_type(how, use_oci),
                    "size": len(b), "digest": digest_of(b)} for b, (_, how) in zip(blobs, layers)],
    }).encode()
    return config, manifest, blobs


def publish(reg: FakeRegistry, repo: str, tag: str, layers: list[tuple[bytes, str]], arch: str = "amd64",
            oci: bool = False) -> tuple[str, bytes]:
    """Store an image in the fake; return (manifest digest, config bytes)."""
    config, manifest, blobs = image_manifest(layers, arch, oci=oci)
    reg.add_blob(repo, config)
    for b in blobs:
        reg.add_blob(repo, b)
    mt = json.loads(manifest)["mediaType"]
    return reg.add_manifest(repo, tag, manifest, mt), config
