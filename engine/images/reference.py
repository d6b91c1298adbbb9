"""Parse and normalize Docker image references (name[:tag][@digest]) as distribution/reference does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

# The grammar of github.com/distribution/reference (regexp.go), transcribed.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
_TAG_RE = re.compile(_TAG)
_HEX64_RE = re.compile(r"[a-f0-9]{64}")
_DIGEST_RE = re.compile(r"sha256:([a-f0-9]{64})")

ERR_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalized named reference: domain/path with an optional tag and digest."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """Return the fully qualified repository name (docker.io/library/busybox)."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """Return the repository name as `docker images` shows it (busybox, foo/bar, localhost:5000/a)."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
                path = path[len(OFFICIAL_PREFIX):]
            return path
        return self.name

    def familiar(self) -> str:
        """Return the familiar string: familiar name plus :tag and @digest when present."""
        s = self.familiar_name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def full(self) -> str:
        """Return the fully qualified string (docker.io/library/busybox:latest)."""
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def with_default_tag(self) -> "Reference":
        """Return the reference with tag latest when it has neither tag nor digest (TagNameOnly)."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, DEFAULT_TAG)

    def is_name_only(self) -> bool:
        return not self.tag and not self.digest


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    head = name[:i] if i >= 0 else ""
    if i == -1 or (not any(c in head for c in ".:") and head != "localhost" and head.lower() == head):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = head, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def _check_digest(digest: str) -> None:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256":
        raise InvalidParameter("unsupported digest algorithm")
    if len(hexpart) != 64:
        raise InvalidParameter("invalid checksum digest length")
    if hexpart.lower() != hexpart:
        raise InvalidParameter("invalid checksum digest format")


def parse(ref: str) -> Reference:
    """Parse a reference the way `docker` does (ParseNormalizedNamed); InvalidParameter with Docker's text."""
    if _HEX64_RE.fullmatch(ref):
        raise InvalidParameter(f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(ref)
    remote_name = remainder.split(":", 1)[0]
    if remote_name.lower() != remote_name:
        raise InvalidParameter(f"invalid reference format: repository name ({remote_name}) must be lowercase")
    full = f"{domain}/{remainder}"
    m = _REFERENCE_RE.fullmatch(full)
    if not m:
        if not ref:
            raise InvalidParameter("repository name must have at least one component")
        if _REFERENCE_RE.fullmatch(full.lower()):
            raise InvalidParameter("repository name must be lowercase")
        raise InvalidParameter(ERR_FORMAT)
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidParameter(f"repository name must not be more than {NAME_TOTAL_MAX} characters")
    if digest:
        _check_digest(digest)
    dom, _, path = name.partition("/")
    return Reference(dom, path, tag, digest)


def parse_tagged(ref: str) -> Reference:
    """Parse a reference and add the default tag latest when it names only a repository."""
    return parse(ref).with_default_tag()


def digest_of(ref: str) -> str | None:
    """Return "sha256:<hex>" when ref is an image id (64 hex or sha256:64 hex), else None (ParseAnyReference)."""
    if _HEX64_RE.fullmatch(ref):
        return f"sha256:{ref}"
    if _DIGEST_RE.fullmatch(ref):
        return ref
    return None


def repo_tag(repo: str, tag: str = "") -> Reference:
    """Build the reference for a `repo` and `tag` query pair (tag, import, commit): InvalidParameter if bad."""
    ref = parse(repo)
    if ref.digest:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if tag:
        if not _TAG_RE.fullmatch(tag):
            raise InvalidParameter("invalid tag format")
        ref = Reference(ref.domain, ref.path, tag)
    return ref.with_default_tag()


def familiar(ref: str) -> str:
    """Return the familiar form of a stored (fully qualified) reference string."""
    return parse(ref).familiar()


def short_id(image_id: str) -> str:
    """Return the 12-hex short form of an id, with or without its sha256: prefix."""
    return image_id.split(":", 1)[-1][:12]


def _match_pattern(pattern: str, text: str) -> bool:
    # Go's path.Match: '*' and '?' never cross a '/', unlike fnmatch.
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise InvalidParameter(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:j]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), text) is not None


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Match a `reference=` filter pattern against a reference (FamiliarMatch: full familiar string, then name)."""
    return _match_pattern(pattern, ref.familiar()) or _match_pattern(pattern, ref.familiar_name)
