"""Speak the registry HTTP API v2 to one registry: auth challenges (bearer token, basic), manifests and blobs."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from engine.errors import EngineError
from engine.registry.auth import AuthConfig, Challenge, Unauthorized, parse_challenges
from engine.registry.config import RegistryHosts

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_MANIFEST = 4 << 20           # containerd's limit too: a manifest is a small JSON document
MAX_CONFIG = 32 << 20
MAX_ATTEMPTS = 3                 # per blob transfer; a resumed download counts as an attempt
UPLOAD_CHUNK = 64 << 20          # bytes per PATCH of a chunked upload
USER_AGENT = "dockweb-engine"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)


class RegistryError(EngineError):
    """An error answer of the registry, worded as Docker words them: "manifest unknown: manifest unknown"."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.detail = status, code, message
        super().__init__(f"{code.lower().replace('_', ' ')}: {message}" if code else message)


class VerificationFailed(EngineError):
    """A blob or manifest whose bytes do not match its digest (a 500, as dockerd reports it)."""


class Unreachable(EngineError):
    """The registry did not answer at all (refused, timed out, bad TLS): a 500 naming the cause."""


class Aborted(EngineError):
    """A transfer stopped because the client was aborted (another transfer of the same pull failed)."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _cause(e: BaseException, netloc: str = "") -> str:
    """Word a connection failure as Go's net package does (what dockerd's messages show)."""
    if isinstance(e, ssl.SSLError):
        return f"tls: {e.reason or e}"
    if isinstance(e, socket.gaierror):
        host = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
        return f"dial tcp: lookup {host}: {(e.strerror or str(e)).lower()}"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"dial tcp {netloc}: i/o timeout" if netloc else "i/o timeout"
    if isinstance(e, ConnectionRefusedError):
        return f"dial tcp {netloc}: connect: connection refused"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    return str(e) or type(e).__name__


@dataclass
class Resp:
    """An open response; close() closes its connection too."""

    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    url: str
    client: "RegistryClient | None" = None

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def read_limited(self, limit: int, what: str) -> bytes:
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            raise VerificationFailed(f"{what} at {self.url} is larger than {limit} bytes")
        return data

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            self.conn.close()
            if self.client is not None:
                self.client._track(self.conn, False)


class RegistryClient:
    """One registry endpoint, one set of credentials; remembers the auth scheme and tokens it was given.

    Safe to share between the threads of one pull: requests have their own connections and the token is
    fetched under a lock. abort() makes every transfer in flight, and every later request, fail with Aborted.
    """

    def __init__(self, hosts: RegistryHosts, domain: str, auth: AuthConfig | None = None,
                 timeout: float = 60.0) -> None:
        self.domain = domain
        self.endpoint = hosts.endpoint(domain)
        self.insecure = hosts.is_insecure(domain)
        self.hosts = hosts
        self.auth = auth or AuthConfig()
        self.timeout = timeout
        self.base = ""                        # "https://host:port" once the ping decided the scheme
        self.scopes: list[str] = []
        self._challenge: Challenge | None = None
        self._token = ""
        self._token_scopes: tuple[str, ...] = ()
        self._lock = threading.Lock()             # guards _open and _aborted
        self._token_lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._aborted = False

    # -- connection and auth ------------------------------------------------------------------------------------

    def abort(self) -> None:
        """Cut every connection in flight and refuse new requests: blocked reads return at once."""
        with self._lock:
            self._aborted = True
            conns = list(self._open)
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @property
    def aborted(self) -> bool:
        return self._aborted

    def _track(self, conn: http.client.HTTPConnection, on: bool) -> None:
        with self._lock:
            if on:
                if self._aborted:
                    raise Aborted(f"transfer from {self.domain} cancelled")
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def add_scope(self, repo_path: str, actions: str) -> None:
        """Ask for repository:<path>:<actions> in the next bearer token (pull, or pull,push)."""
        scope = f"repository:{repo_path}:{actions}"
        if scope not in self.scopes:
            self.scopes.append(scope)

    def _connect(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            ctx = ssl.create_default_context()
            if self.hosts.is_insecure(parts.netloc):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(parts.netloc, timeout=self.timeout, context=ctx), target or "/"
        return http.client.HTTPConnection(parts.netloc, timeout=self.timeout), target or "/"

    def _raw(self, method: str, url: str, headers: dict | None = None, body: bytes | BinaryIO | None = None,
             redirects: int = 5) -> Resp:
        """Send one request (following redirects for GET/HEAD); Unreachable when no answer came."""
        for _ in range(redirects + 1):
            conn, target = self._connect(url)
            hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
            self._track(conn, True)
            try:
                conn.request(method, target, body=body, headers=hdrs)
                raw = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._track(conn, False)
                if self._aborted:
                    raise Aborted(f"transfer from {self.domain} cancelled") from e
                raise Unreachable(f'{method.capitalize()} "{url}": {_cause(e, urllib.parse.urlsplit(url).netloc)}') from e
            resp = Resp(raw.status, raw.headers, raw, conn, url, self)
            if raw.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and raw.getheader("Location"):
                new = urllib.parse.urljoin(url, raw.getheader("Location"))
                resp.close()
                if urllib.parse.urlsplit(new).netloc != urllib.parse.urlsplit(url).netloc:
                    # Blob storage behind a redirect has its own (signed URL) auth: never leak ours there.
                    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
                url = new
                continue
            return resp
        raise Unreachable(f'{method.capitalize()} "{url}": stopped after {redirects} redirects')

    def ping(self) -> None:
        """GET /v2/: choose https or (for an insecure registry) http, and learn the auth challenge."""
        if self.base:
            return
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Unreachable | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.endpoint}"
            try:
                resp = self._raw("GET", base + "/v2/")
            except Unreachable as e:
                last = e
                continue
            try:
                resp.read(64 << 10)
            except (OSError, http.client.HTTPException):
                pass
            resp.close()
            if resp.status == 401:
                self._challenge = self._pick_challenge(resp)
            elif resp.status >= 400 and resp.status != 404:
                last = Unreachable(f'Get "{base}/v2/": unexpected status {resp.status}')
                continue
            self.base = base
            return
        assert last is not None
        raise last

    def _pick_challenge(self, resp: Resp) -> Challenge | None:
        challenges = parse_challenges(resp.header("WWW-Authenticate"))
        for scheme in ("bearer", "basic"):
            for c in challenges:
                if c.scheme == scheme:
                    return c
        return None

    def _basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.auth.username}:{self.auth.password}".encode()).decode()

    def _authorization(self, method: str, url: str, fresh: bool = False) -> str | None:
        c = self._challenge
        if c is None:
            return None
        if c.scheme == "basic":
            if not (self.auth.username and self.auth.password):
                raise Unauthorized(f'{method.capitalize()} "{url}": no basic auth credentials')
            return self._basic()
        if c.scheme == "bearer":
            if self.auth.registrytoken:
                return "Bearer " + self.auth.registrytoken
            scopes = tuple(self.scopes)
            # One fetch for the threads of a pull that all find the token missing at the same moment.
            with self._token_lock:
                if fresh or not self._token or self._token_scopes != scopes:
                    self._token = self._fetch_token(c, scopes)
                    self._token_scopes = scopes
                return "Bearer " + self._token
        return None

    def _fetch_token(self, c: Challenge, scopes: tuple[str, ...]) -> str:
        """Get a bearer token from the challenge's realm for scopes (basic credentials or a refresh token)."""
        realm = c.params.get("realm", "")
        if not realm:
            raise Unauthorized(f"registry {self.domain} asked for a bearer token without a realm")
        all_scopes = list(scopes)
        if c.params.get("scope") and c.params["scope"] not in all_scopes:
            all_scopes.append(c.params["scope"])
        service = c.params.get("service", "")
        if self.auth.identitytoken:
            form = [("grant_type", "refresh_token"), ("refresh_token", self.auth.identitytoken),
                    ("client_id", USER_AGENT), ("service", service)] + [("scope", s) for s in all_scopes]
            resp = self._raw("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                             urllib.parse.urlencode(form).encode())
            url = realm
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in all_scopes]
            headers = {}
            if self.auth.username and self.auth.password:
                query.append(("account", self.auth.username))
                headers["Authorization"] = self._basic()
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
            resp = self._raw("GET", url, headers)
        try:
            body = resp.read_limited(1 << 20, "token response")
        finally:
            resp.close()
        if resp.status in (401, 403):
            raise Unauthorized(f'Get "{url}": {_error_text(body) or "unauthorized: incorrect username or password"}')
        if resp.status != 200:
            raise Unauthorized(f'Get "{url}": token server answered {resp.status}: {_error_text(body)}')
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise Unauthorized(f'Get "{url}": the token server sent no token')
        return token

    def request(self, method: str, path: str, headers: dict | None = None,
                body: bytes | BinaryIO | None = None, ok: tuple[int, ...] = (200,)) -> Resp:
        """Send a request to the registry, answering one auth challenge; RegistryError unless status in ok."""
        self.ping()
        url = path if path.startswith(("http://", "https://")) else self.base + path
        start = body.tell() if body is not None and hasattr(body, "tell") else None
        for attempt in range(2):
            hdrs = dict(headers or {})
            authz = self._authorization(method, url, fresh=attempt > 0)
            if authz:
                hdrs["Authorization"] = authz
            if start is not None:
                body.seek(start)  # type: ignore[union-attr]
            resp = self._raw(method, url, hdrs, body)
            if resp.status == 401 and attempt == 0:
                challenge = self._pick_challenge(resp)
                resp.close()
                if challenge is None:
                    raise Unauthorized(f'{method.capitalize()} "{url}": unauthorized: authentication required')
                self._challenge = challenge  # retried once with fresh credentials for this challenge
                continue
            if resp.status in ok:
                return resp
            try:
                body_bytes = resp.read(64 << 10) if method != "HEAD" else b""
            except (OSError, http.client.HTTPException):
                body_bytes = b""
            resp.close()
            raise self._error(resp.status, body_bytes, method, url)
        raise AssertionError("unreachable")

    def _error(self, status: int, body: bytes, method: str, url: str) -> EngineError:
        errors = _registry_errors(body)
        for e in errors:
            e.status = status
        if status == 401:
            return Unauthorized(errors[0].message if errors else "unauthorized: authentication required")
        if errors:
            return errors[0]
        default = {404: "NOT_FOUND", 403: "DENIED"}.get(status, "")
        text = body.decode(errors="replace").strip()[:200] or http.client.responses.get(status, "error")
        return RegistryError(status, default, f"{method.capitalize()} {url}: {status} {text}"
                             if not default else text)

    # -- manifests ----------------------------------------------------------------------------------------------

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """Fetch a manifest by tag or digest; return (exact bytes, media type, digest), the digest verified."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": ", ".join(MANIFEST_TYPES)})
        try:
            body = resp.read_limited(MAX_MANIFEST, "manifest")
        except (OSError, http.client.HTTPException) as e:
            raise Unreachable(f'Get "{resp.url}": {_cause(e)}') from e
        finally:
            resp.close()
        actual = sha256_digest(body)
        expected = ref if ref.startswith("sha256:") else resp.header("Docker-Content-Digest")
        if expected and expected != actual:
            raise VerificationFailed(f"manifest verification failed for digest {expected}")
        media_type = resp.header("Content-Type").split(";")[0].strip()
        try:
            doc = json.loads(body)
        except ValueError:
            raise VerificationFailed(f"manifest {ref} of {repo} is not valid JSON") from None
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
            media_type = doc["mediaType"]
        return body, media_type, actual

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        """Upload a manifest under a tag (or digest); return its digest, checked against the registry's."""
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", {"Content-Type": media_type},
                            body, ok=(200, 201, 202))
        resp.close()
        digest = sha256_digest(body)
        told = resp.header("Docker-Content-Digest")
        if told and told != digest:
            raise VerificationFailed(f"registry stored manifest {told}, expected {digest}")
        return digest

    def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """List a repository's tags (GET /v2/<repo>/tags/list), following the Link rel="next" pages."""
        path = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
        tags: list[str] = []
        seen: set[str] = set()
        while path:
            if path in seen:
                raise RegistryError(0, "", f"registry {self.domain} sent a tags list page that links to itself")
            seen.add(path)
            resp = self.request("GET", path, {"Accept": "application/json"})
            try:
                body = resp.read_limited(MAX_MANIFEST, "tags list")
            except (OSError, http.client.HTTPException) as e:
                raise Unreachable(f'Get "{resp.url}": {_cause(e)}') from e
            finally:
                resp.close()
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(resp.status, "", f"registry {self.domain} sent a tags list that is not "
                                                     f"JSON for {repo}") from None
            tags += [t for t in page if isinstance(t, str)]
            path = _next_link(resp.header("Link"))
        return tags

    # -- blobs --------------------------------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str) -> int | None:
        """HEAD a blob: its size when the repository has it, else None."""
        try:
            resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        except RegistryError as e:
            if e.status == 404:
                return None
            raise
        resp.close()
        try:
            return int(resp.header("Content-Length"))
        except ValueError:
            return -1

    def get_small_blob(self, repo: str, digest: str, limit: int = MAX_CONFIG) -> bytes:
        """Fetch a small blob (an image config) into memory, verifying its digest."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}")
        try:
            data = resp.read_limited(limit, f"blob {digest}")
        except (OSError, http.client.HTTPException) as e:
            raise Unreachable(f'Get "{resp.url}": {_cause(e)}') from e
        finally:
            resp.close()
        if sha256_digest(data) != digest:
            raise VerificationFailed(f"blob verification failed for digest {digest}")
        return data

    def download_blob(self, repo: str, digest: str, size: int | None, out: BinaryIO) -> Iterator[int]:
        """Stream a blob into out, yielding the bytes received so far; resume with Range after a failure.

        The digest (and size, when known) is verified at the end: VerificationFailed if it differs.
        """
        path = f"/v2/{repo}/blobs/{digest}"
        sha = hashlib.sha256()
        have = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                resp = self.request("GET", path, headers, ok=(200, 206))
            except Unreachable:
                if attempt == MAX_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
                continue
            try:
                if have and resp.status != 206:
                    # No range support: start over.
                    out.seek(0)
                    out.truncate()
                    sha, have = hashlib.sha256(), 0
                while True:
                    chunk = resp.raw.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    sha.update(chunk)
                    have += len(chunk)
                    if size is not None and size >= 0 and have > size:
                        raise VerificationFailed(f"filesystem layer verification failed for digest {digest}: "
                                                 f"more than the {size} bytes the manifest gives")
                    yield have
            except (OSError, http.client.HTTPException) as e:
                if self._aborted:
                    raise Aborted(f"download of {digest} cancelled") from e
                log.info("download of %s interrupted at %d bytes (attempt %d): %s", digest, have, attempt, e)
                if attempt == MAX_ATTEMPTS:
                    raise Unreachable(f'Get "{resp.url}": {_cause(e)}') from e
                time.sleep(0.2 * attempt)
                continue
            finally:
                resp.close()
            if size is not None and size >= 0 and have < size:
                if attempt == MAX_ATTEMPTS:
                    raise Unreachable(f'Get "{self.base}{path}": unexpected EOF after {have} of {size} bytes')
                continue
            break
        out.flush()
        if "sha256:" + sha.hexdigest() != digest:
            raise VerificationFailed(f"filesystem layer verification failed for digest {digest}")

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> tuple[bool, str | None]:
        """Ask for a cross-repository mount; return (mounted, upload location when the registry started one)."""
        q = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        try:
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", {"Content-Length": "0"}, b"",
                                ok=(201, 202))
        except (RegistryError, Unauthorized):
            return False, None
        resp.close()
        if resp.status == 201:
            return True, None
        return False, resp.header("Location") or None

    def start_upload(self, repo: str) -> str:
        """Open an upload session; return its location URL."""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", {"Content-Length": "0"}, b"", ok=(202,))
        resp.close()
        return self._location(resp)

    def _location(self, resp: Resp) -> str:
        loc = resp.header("Location")
        if not loc:
            raise RegistryError(resp.status, "", f"registry {self.domain} sent no upload location")
        return urllib.parse.urljoin(self.base + "/", loc)

    def _upload_offset(self, location: str) -> int | None:
        """Ask an upload session how many bytes it holds (Range: 0-N); None when the session is gone."""
        try:
            resp = self.request("GET", location, ok=(204, 200))
        except (RegistryError, Unreachable):
            return None
        resp.close()
        rng = resp.header("Range")
        if rng and "-" in rng:
            return int(rng.rsplit("-", 1)[1]) + 1
        return 0

    def upload_blob(self, repo: str, src: BinaryIO, size: int, digest: str,
                    location: str | None = None) -> Iterator[int]:
        """Upload size bytes of src as blob digest in chunks (PATCH ..., then PUT ?digest=); yield bytes sent.

        A failed chunk is retried from where the session says it stopped, up to MAX_ATTEMPTS failures.
        """
        sent, failures = 0, 0
        loc = location or self.start_upload(repo)
        while True:
            try:
                while sent < size:
                    n = min(UPLOAD_CHUNK, size - sent)
                    src.seek(sent)
                    body = _Window(src, n)
                    resp = self.request("PATCH", loc, {"Content-Type": "application/octet-stream",
                                                       "Content-Length": str(n),
                                                       "Content-Range": f"{sent}-{sent + n - 1}"},
                                        body, ok=(202,))  # type: ignore[arg-type]
                    resp.close()
                    loc = self._location(resp)
                    sent += n
                    yield sent
                sep = "&" if "?" in loc else "?"
                resp = self.request("PUT", loc + sep + urllib.parse.urlencode({"digest": digest}),
                                    {"Content-Length": "0", "Content-Type": "application/octet-stream"}, b"",
                                    ok=(201, 204))
                resp.close()
                return
            except (Unreachable, RegistryError) as e:
                failures += 1
                if failures >= MAX_ATTEMPTS or (isinstance(e, RegistryError) and e.code == "DIGEST_INVALID"):
                    raise
                log.info("upload of %s failed at %d bytes: %s; retrying", digest, sent, e)
                time.sleep(0.2 * failures)
                offset = self._upload_offset(loc)
                if offset is None:
                    loc, offset = self.start_upload(repo), 0
                sent = min(offset, size)

    def check_login(self) -> None:
        """GET /v2/ with the credentials (a bearer token without scope when asked): Unauthorized if refused."""
        self.ping()
        url = self.base + "/v2/"
        if self._challenge is None:
            return  # an open registry: any credentials are accepted
        if self._challenge.scheme == "bearer":
            if not self.auth.has_credentials:
                raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
            try:
                self._authorization("GET", url, fresh=True)
            except Unauthorized as e:
                raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized "
                                   f"({e.message})") from None
        elif not (self.auth.username and self.auth.password):
            raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
        resp = self._raw("GET", url, {"Authorization": self._authorization("GET", url) or ""})
        resp.close()
        if resp.status == 401:
            raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
        if resp.status >= 400:
            raise RegistryError(resp.status, "", f"login attempt to {url} failed with status: {resp.status} "
                                                 f"{http.client.responses.get(resp.status, '')}")


class _Window:
    """A read()-able view of the next n bytes of a file (one upload chunk), re-readable after seek(0)."""

    def __init__(self, f: BinaryIO, n: int) -> None:
        self.f, self.n, self.start, self.left = f, n, f.tell(), n

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data

    def tell(self) -> int:
        return self.n - self.left

    def seek(self, pos: int) -> None:
        self.f.seek(self.start + pos)
        self.left = self.n - pos


def _next_link(header: str) -> str:
    """Return the target of a Link header's rel="next" entry (`</v2/x/tags/list?last=b&n=2>; rel="next"`), or ""."""
    for part in header.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if target.startswith("<") and target.endswith(">") and re.search(r'rel="?next"?', params):
            return target[1:-1]
    return ""


def _registry_errors(body: bytes) -> list[RegistryError]:
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    out = []
    for e in (doc.get("errors") if isinstance(doc, dict) else None) or []:
        if isinstance(e, dict):
            out.append(RegistryError(0, str(e.get("code") or ""), str(e.get("message") or "")))
    return out


def _error_text(body: bytes) -> str:
    errors = _registry_errors(body)
    if errors:
        return errors[0].message
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("details"):
            return str(doc["details"])
    except ValueError:
        pass
    return body.decode(errors="replace").strip()[:200]


def open_spool(directory: os.PathLike) -> BinaryIO:
    """Open an anonymous temporary file on the store's filesystem for one blob."""
    import tempfile

    return tempfile.TemporaryFile(dir=directory)
