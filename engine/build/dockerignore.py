"""Decide which build-context paths .dockerignore excludes, with moby/patternmatcher's rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidParameter

# Characters that are regexp syntax but plain in a path pattern (patternmatcher's shouldEscape, plus ^ which
# Go copies raw into its regexp, where it can never match mid-pattern: escaping it keeps "a^b" literal).
_PLAIN_SPECIALS = set(".+()|{}$^")


def clean(path: str) -> str:
    """Return the shortest equivalent slash path, like Go's filepath.Clean on Linux."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    return ("/" + out) if rooted else (out or ".")


def read_patterns(data: str | bytes) -> list[str]:
    """Turn .dockerignore content into cleaned patterns (ignorefile.ReadAll): comments and blanks dropped."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    patterns: list[str] = []
    for line in text.split("\n"):
        if line.startswith("#"):  # only a # in the first column starts a comment
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]  # "/foo" means foo at the context root
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _bad_pattern() -> InvalidParameter:
    return InvalidParameter("syntax error in pattern")


def _check_syntax(pattern: str) -> None:
    """Reject what Go's filepath.Match rejects: a trailing \\, unclosed or malformed [...] classes."""
    i, n = 0, len(pattern)

    def escaped_char(j: int) -> int:
        # One class character, possibly \-escaped; it must be followed by more pattern text.
        if j >= n or pattern[j] in "-]":
            raise _bad_pattern()
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                raise _bad_pattern()
        j += 1
        if j >= n:
            raise _bad_pattern()
        return j

    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise _bad_pattern()
            i += 2
            continue
        if c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = escaped_char(i)
                if pattern[i] == "-":
                    i = escaped_char(i + 1)
                ranges += 1
            continue
        i += 1


def _class_regex(pattern: str, i: int) -> tuple[str, int]:
    """Translate the [...] class starting at pattern[i] (already syntax-checked); return (regex, next index)."""
    out = ["["]
    i += 1
    if pattern[i] == "^":
        out.append("^")
        i += 1
    first = True
    while first or pattern[i] != "]":
        first = False
        if pattern[i] == "\\":
            i += 1
        out.append(re.escape(pattern[i]))
        i += 1
        if pattern[i] == "-":
            out.append("-")
            i += 1
            if pattern[i] == "\\":
                i += 1
            out.append(re.escape(pattern[i]))
            i += 1
    out.append("]")
    return "".join(out), i + 1


@dataclass
class _Pattern:
    text: str            # cleaned, without the leading "!"
    exclusion: bool
    kind: str = ""       # exact, prefix, suffix or regexp (patternmatcher's matchType)
    regex: re.Pattern | None = None

    def compile(self) -> None:
        """Classify and translate the pattern as patternmatcher's Pattern.compile does."""
        p, out, kind, i, loop = self.text, ["^"], "exact", 0, 0
        while i < len(p):
            c = p[i]
            if c == "*":
                if p[i + 1:i + 2] == "*":
                    i += 2
                    if p[i:i + 1] == "/":
                        i += 1  # "**/" is "**"
                    if i >= len(p):
                        # "**" at the end matches everything below, like .gitignore
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            out.append(".*")
                            kind = "regexp"
                    else:
                        out.append("(.*/)?")
                        kind = "regexp"
                    if loop == 0:
                        kind = "suffix"
                    loop += 1
                    continue
                out.append("[^/]*")
                kind = "regexp"
            elif c == "?":
                out.append("[^/]")
                kind = "regexp"
            elif c == "\\":
                i += 1
                out.append(re.escape(p[i]))
                kind = "regexp"
            elif c == "[":
                regex, i = _class_regex(p, i)
                out.append(regex)
                kind = "regexp"
                loop += 1
                continue
            elif c in _PLAIN_SPECIALS or c == "]":
                out.append("\\" + c)
            else:
                out.append(re.escape(c))
            i += 1
            loop += 1
        self.kind = kind
        if kind == "regexp":
            self.regex = re.compile("".join(out) + r"\Z", re.S)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])  # the pattern without its trailing "**"
        if self.kind == "suffix":
            suffix = self.text[2:]  # the pattern without its leading "**"
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def has_wildcards(self) -> bool:
        return any(c in self.text for c in "*?[\\")


class Matcher:
    """Patterns in .dockerignore order: the last pattern matching a path (or one of its parents) decides."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise InvalidParameter('illegal exclusion pattern: "!"')
                p = p[1:]
            _check_syntax(p)
            pattern = _Pattern(text=p, exclusion=exclusion)
            pattern.compile()
            self.patterns.append(pattern)

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, relpath: str) -> bool:
        """Return whether the ignore patterns exclude this path (patternmatcher's MatchesOrParentMatches)."""
        path = clean(relpath)
        if path == ".":
            return False  # the context root itself is never excluded
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            # An exception can only change an excluded path, an exclusion only an included one.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                hit = any(pattern.match("/".join(parents[:i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_include_inside(self, reldir: str) -> bool:
        """Return whether an exception could re-include something below this directory (then walk into it)."""
        prefix = clean(reldir) + "/"
        for pattern in self.patterns:
            if pattern.exclusion and (pattern.has_wildcards() or (pattern.text + "/").startswith(prefix)):
                return True
        return False

    def excluded(self, relpath: str, is_dir: bool = False) -> bool:
        """Return whether to leave this path out of the context.

        For a directory, True means the whole subtree can be skipped. A directory that matches a pattern but
        may hold re-included files (see may_include_inside) answers False: walk into it and ask for each entry;
        Docker sends such a directory only as the parent of an entry it sends.
        """
        if not self.matches(relpath):
            return False
        return not (is_dir and self.may_include_inside(relpath))


def keep_build_files(patterns: list[str], dockerfile: str = "Dockerfile") -> list[str]:
    """Re-include .dockerignore and the Dockerfile when the patterns exclude them, as the docker CLI does."""
    out = list(patterns)
    matcher = Matcher(out)
    for name in (".dockerignore", dockerfile):
        if matcher.matches(name):
            out.append("!" + clean(name))
    return out
