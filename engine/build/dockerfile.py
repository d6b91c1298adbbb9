"""Parse Dockerfile text into stages of Instruction dataclasses, with Docker's syntax rules and error messages.

This module is the one implementation of the Dockerfile language in the project: the line reader (parser
directives, continuations, comments, heredocs), the per-instruction syntax checks (flags, argument counts) and the
word lexer used for variable substitution (`expand`, `words`), after moby/buildkit's frontend/dockerfile parser,
instructions and shell packages. Typed evaluation of each instruction lives in engine/build/instructions.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Mapping

from engine.errors import InvalidParameter


class DockerfileError(InvalidParameter):
    """A Dockerfile Docker would reject; `line` is the 1-based line of the instruction, 0 for the whole file."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"dockerfile parse error on line {line}: {message}" if line else message)
        self.line = line
        self.reason = message


@dataclass
class Heredoc:
    """A here-document: `content` has its line endings, and its leading tabs already removed when `chomp`."""
    name: str
    content: str
    expand: bool = True   # False when any part of the delimiter word was quoted: <<"EOF", <<'EOF'
    chomp: bool = False   # <<-EOF
    fd: int = 0           # 3<<EOF


@dataclass
class Instruction:
    """One instruction; see parse() for the shape of `args` per keyword."""
    keyword: str
    args: list[str]
    json: bool = False
    flags: dict[str, list[str]] = field(default_factory=dict)
    heredocs: list[Heredoc] = field(default_factory=list)
    original: str = ""
    line: int = 0


@dataclass
class Stage:
    index: int
    name: str | None
    base: str                # as written: ARG substitution happens in the builder, with the build args
    platform: str | None     # as written, from --platform
    instructions: list[Instruction]
    line: int


@dataclass
class Dockerfile:
    escape: str
    directives: dict[str, str]
    meta_args: list[Instruction]
    stages: list[Stage]
    warnings: list[str] = field(default_factory=list)


KEYWORDS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
            "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")

# Flags each instruction accepts and their kind (buildkit's BFlags: bool, string, or strings that repeat).
FLAGS: dict[str, dict[str, str]] = {
    "ADD": {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool", "checksum": "string",
            "exclude": "strings", "unpack": "bool"},
    "COPY": {"chown": "string", "chmod": "string", "from": "string", "link": "bool", "parents": "bool",
             "exclude": "strings"},
    "FROM": {"platform": "string"},
    "RUN": {"mount": "strings", "network": "string", "security": "string", "device": "strings"},
    "HEALTHCHECK": {"interval": "string", "timeout": "string", "start-period": "string", "start-interval": "string",
                    "retries": "string"},
}

_HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")
_DIRECTIVES = ("escape", "syntax", "check")
_DIRECTIVE_RE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"(\d*)<<(-?)([^<]*)")
_STAGE_NAME_RE = re.compile(r"[a-z][a-z0-9-_.]*")


# -- the line reader ----------------------------------------------------------------------------------------------

class _Directives:
    """Parser directives: only before the first instruction, comment or blank line; each at most once."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.done = False
        self.seen: dict[str, str] = {}
        self._set_continuation()

    def _set_continuation(self) -> None:
        # The escape token ends a line as a continuation unless it is itself escaped ("foo \\" is not one).
        e = re.escape(self.escape)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def check(self, line: str, lineno: int) -> None:
        if self.done:
            return
        m = _DIRECTIVE_RE.fullmatch(line)
        if not m or m.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return
        key, value = m.group(1).lower(), m.group(2)
        if key in self.seen:
            raise DockerfileError(f"only one {key} parser directive can be used", lineno)
        self.seen[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", lineno)
            self.escape = value
            self._set_continuation()

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Return the line without its continuation token, and whether the instruction ends here."""
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line, count=1), False
        return line, True


def _split_lines(text: str) -> list[str]:
    """Split on \\n only (as bufio does), keeping each line's ending for heredoc content."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _trim_newline(line).lstrip().startswith("#")


def _process_line(d: _Directives, raw: str, lineno: int, strip_left: bool) -> str:
    token = _trim_newline(raw)
    if strip_left:
        token = token.lstrip()
    d.check(token, lineno)
    return "" if token.startswith("#") else token


def parse(data: str | bytes) -> Dockerfile:
    """Parse a Dockerfile into parser directives, meta ARGs and stages; raise DockerfileError like Docker."""
    nodes, d, warnings = _read(data)
    return _assemble(nodes, d, warnings)


def read_instructions(data: str | bytes) -> tuple[list[Instruction], str]:
    """Read instructions without checking them or grouping them in stages (for --change); also the escape."""
    nodes, d, _ = _read(data)
    return nodes, d.escape


def _read(data: str | bytes) -> tuple[list[Instruction], _Directives, list[str]]:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    lines = _split_lines(text)
    d = _Directives()
    warnings: list[str] = []
    nodes: list[Instruction] = []
    i = 0
    while i < len(lines):
        token = _process_line(d, lines[i], i + 1, strip_left=True)
        i += 1
        start = i
        line, done = d.trim_continuation(token)
        if done and line == "":
            continue
        empty_continuation = False
        while not done and i < len(lines):
            raw = lines[i]
            token = _process_line(d, raw, i + 1, strip_left=False)
            i += 1
            if _is_comment(raw):
                continue  # comment lines inside a continuation are dropped, as Docker does
            if not token.strip():
                empty_continuation = True
                continue
            more, done = d.trim_continuation(token)
            line += more
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {line}")
        inst = _node(line, start, d.escape)
        if _can_contain_heredoc(inst, d.escape):
            for heredoc in _heredocs_from_line(line, d.escape, start):
                i = _read_heredoc(lines, i, heredoc, start)
                inst.heredocs.append(heredoc)
        nodes.append(inst)
    if not nodes:
        raise DockerfileError("file with no instructions", 0)
    return nodes, d, warnings


def _read_heredoc(lines: list[str], i: int, heredoc: Heredoc, start: int) -> int:
    content: list[str] = []
    while i < len(lines):
        raw = lines[i]
        i += 1
        candidate = _trim_newline(raw)
        if heredoc.chomp:
            candidate = candidate.lstrip("\t")
        if candidate == heredoc.name:
            text = "".join(content)
            heredoc.content = re.sub(r"(?m)^\t+", "", text) if heredoc.chomp else text
            return i
        content.append(raw)
    raise DockerfileError("unterminated heredoc", start)


# -- one instruction ----------------------------------------------------------------------------------------------

def _node(line: str, lineno: int, escape: str) -> Instruction:
    """Split a joined line into keyword, flags and arguments (buildkit's splitCommand + line parsers)."""
    parts = _WHITESPACE_RE.split(line.strip(), maxsplit=1)
    keyword = parts[0]
    rest, flag_words = _extract_flags(parts[1]) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    inst = Instruction(keyword=keyword.upper(), args=[], original=line.strip(), line=lineno)
    inst.flags = {"": flag_words}  # raw flag words, checked per keyword in _check()
    kw = inst.keyword
    if kw in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME"):
        exec_form = _parse_json(rest, lineno)
        if exec_form is not None:
            inst.args, inst.json = exec_form, True
        elif rest:
            inst.args = [rest]
    elif kw == "HEALTHCHECK":
        # args: [TYPE, *exec form] or [TYPE, "shell command"]; ["NONE"]
        m = re.match(r"(\S*)\s*(.*)", rest, re.S)
        typ, cmd = (m.group(1), m.group(2)) if m else ("", "")
        if typ:
            exec_form = _parse_json(cmd, lineno)
            if exec_form is not None:
                inst.args, inst.json = [typ, *exec_form], True
            else:
                inst.args = [typ, cmd] if cmd else [typ]
    elif rest:
        inst.args = [rest]
    return inst


def _parse_json(text: str, lineno: int) -> list[str] | None:
    """Return the exec-form list, or None when the text is not a JSON array (then it is shell form)."""
    text = text.lstrip()
    if not text.startswith("["):
        return None

    def no_constants(name: str) -> None:
        raise ValueError(name)  # Go's JSON has no NaN/Infinity: such text is shell form there

    try:
        value = json.loads(text, parse_constant=no_constants)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise DockerfileError("when using JSON array syntax, arrays must be comprised of strings only", lineno)
    return value


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Take the leading --flag[=value] words (quotes and backslashes removed); return (rest, flag words)."""
    words: list[str] = []
    word, blank_ok, quote, phase = "", False, "", "spaces"
    pos, n = 0, len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if ch.isspace():
                phase = "spaces"
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
        elif ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                if phase == "quote":
                    phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word += ch
        pos += 1
    return "", words


def _parse_flags(keyword: str, words: list[str], lineno: int) -> dict[str, list[str]]:
    """Check flag words against what the instruction accepts (buildkit's BFlags.Parse)."""
    allowed = FLAGS.get(keyword, {})
    flags: dict[str, list[str]] = {}
    for w in words:
        name, eq, value = w[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            raise DockerfileError(_suggest(f"unknown flag: {name}", name, list(allowed)), lineno)
        if name in flags and kind != "strings":
            raise DockerfileError(f"duplicate flag specified: {name}", lineno)
        if kind == "bool":
            if eq and value == "":
                raise DockerfileError(f"missing a value on flag: {name}", lineno)
            if value.lower() not in ("true", "false", ""):
                raise DockerfileError(f"expecting boolean value for flag {name}, not: {value}", lineno)
            value = "false" if value.lower() == "false" else "true"
        elif not eq:
            raise DockerfileError(f"missing a value on flag: {name}", lineno)
        flags.setdefault(name, []).append(value)
    return flags


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _suggest(message: str, value: str, options: list[str], case_sensitive: bool = True) -> str:
    """Append Docker's "(did you mean X?)" when an option is within two edits (buildkit's suggest package)."""
    best, score = "", 3
    wanted = value if case_sensitive else value.lower()
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        distance = _levenshtein(candidate, wanted)
        if distance < score:
            best, score = candidate, distance
    if best and not case_sensitive:
        # The suggestion follows the case the user wrote: RUNN -> RUN, runn -> run.
        best = best.lower() if value == value.lower() else best.upper() if value == value.upper() else best
    return f"{message} (did you mean {best}?)" if best else message


def _can_contain_heredoc(inst: Instruction, escape: str) -> bool:
    if inst.keyword == "ONBUILD":
        if not inst.args:
            return False
        inst = _node(inst.args[0], inst.line, escape)
    return inst.keyword in _HEREDOC_KEYWORDS and not inst.json


def parse_heredoc(word: str, escape: str = "\\", lineno: int = 0) -> Heredoc | None:
    """Return the Heredoc a word like <<EOF, <<-"EOF" or 3<<EOF opens, or None for any other word."""
    m = _HEREDOC_RE.fullmatch(word)
    if not m or not m.group(3):
        return None
    try:
        plain = Lexer(escape, {}, skip_unset_env=True).process(m.group(3))[1]
        raw = Lexer(escape, {}, raw_quotes=True, skip_unset_env=True).process(m.group(3))[1]
    except LexError as e:
        raise DockerfileError(e.message, lineno) from None
    if len(plain) != 1 or len(raw) != 1:
        return None
    # A quoted part in the delimiter word turns expansion off, as in the shell.
    quotes = lambda s: s.count("'") + s.count('"')  # noqa: E731
    return Heredoc(name=plain[0], content="", expand=quotes(plain[0]) == quotes(raw[0]),
                   chomp=m.group(2) == "-", fd=int(m.group(1) or 0))


def _heredocs_from_line(line: str, escape: str, lineno: int) -> list[Heredoc]:
    try:
        found = Lexer(escape, {}, raw_quotes=True, raw_escapes=True, skip_unset_env=True).process(line)[1]
    except LexError:
        found = []  # buildkit ignores lexing errors here: such a line simply has no heredoc
    docs = []
    for word in found:
        heredoc = parse_heredoc(word, escape, lineno)
        if heredoc is not None:
            docs.append(heredoc)
    return docs


# -- syntax checks per instruction (buildkit's instructions.Parse) -------------------------------------------------

def _check(inst: Instruction, escape: str) -> None:
    """Validate flags and argument counts; leave inst.flags holding the parsed flags."""
    kw, lineno = inst.keyword, inst.line
    if kw not in KEYWORDS:
        written = inst.original.split()[0]
        raise DockerfileError(_suggest(f"unknown instruction: {written}", written, list(KEYWORDS), False), lineno)
    words = inst.flags.pop("", None)  # None: flags already checked by an earlier call
    if words is None:
        pass
    elif kw == "HEALTHCHECK" and inst.args and inst.args[0].upper() == "NONE":
        inst.flags = {}  # Docker does not look at flags of HEALTHCHECK NONE
    else:
        inst.flags = _parse_flags(kw, words, lineno)
    text = inst.args[0] if inst.args and not inst.json else ""
    if kw in ("ENV", "LABEL"):
        name_values(kw, text, lineno, escape)
    elif kw == "ARG":
        if not inst.args:
            raise DockerfileError("ARG requires at least one argument", lineno)
        for word in _parse_words(text, escape):
            if word.startswith("="):
                raise DockerfileError("ARG names can not be blank", lineno)
    elif kw == "FROM":
        from_args(inst)
    elif kw in ("ADD", "COPY"):
        args = inst.args if inst.json else _WHITESPACE_RE.split(text) if text else []
        if len(args) < 2:
            raise DockerfileError(f"{kw} requires at least two arguments, but only one was provided. "
                                  "Destination could not be determined", lineno)
        if parse_heredoc(args[-1], escape, lineno) is not None:
            raise DockerfileError(f"{kw} cannot accept a heredoc as a destination", lineno)
    elif kw in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"):
        if not inst.args:
            raise DockerfileError(f"{kw} requires exactly one argument", lineno)
    elif kw in ("EXPOSE", "VOLUME"):
        if not inst.args:
            raise DockerfileError(f"{kw} requires at least one argument", lineno)
        if kw == "VOLUME" and inst.json and any(not v.strip() for v in inst.args):
            raise DockerfileError("VOLUME specified can not be an empty string", lineno)
    elif kw == "SHELL":
        if not inst.args:
            raise DockerfileError("SHELL requires at least one argument", lineno)
        if not inst.json:
            raise DockerfileError("SHELL requires the arguments to be in JSON form", lineno)
    elif kw == "HEALTHCHECK":
        from engine.build.instructions import healthcheck  # evaluation lives there; it imports this module
        healthcheck(inst)
    elif kw == "ONBUILD":
        onbuild_trigger(inst, escape)


def from_args(inst: Instruction) -> tuple[str, str | None]:
    """Return (base, stage name or None) of a FROM; check `FROM image [AS name]`."""
    args = _WHITESPACE_RE.split(inst.args[0]) if inst.args else []
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME_RE.fullmatch(name):
            raise DockerfileError(f"invalid name for build stage: {_go_quote(args[2])}, name can't start with a "
                                  "number or contain symbols", inst.line)
        return args[0], name
    if len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments", inst.line)
    return args[0], None


def onbuild_trigger(inst: Instruction, escape: str = "\\") -> Instruction:
    """Parse and check the instruction an ONBUILD wraps."""
    if not inst.args:
        raise DockerfileError("ONBUILD requires at least one argument", inst.line)
    trigger = _node(inst.args[0], inst.line, escape)
    if trigger.keyword == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", inst.line)
    if trigger.keyword in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger.keyword} isn't allowed as an ONBUILD trigger", inst.line)
    trigger.heredocs = inst.heredocs
    _check(trigger, escape)
    return trigger


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes (buildkit's parseWords)."""
    words: list[str] = []
    word, phase, quote, blank_ok = "", "spaces", "", False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if phase == "spaces":
            if ch.isspace():
                i += 1
                continue
            phase = "word"
        if phase == "word":
            if ch.isspace():
                if blank_ok or word:
                    words.append(word)
                word, blank_ok, phase = "", False, "spaces"
                i += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            elif ch == escape:
                if i + 1 == n:
                    break  # an escape token at the end of the line is dropped
                word += ch
                i += 1
                ch = rest[i]
            word += ch
            i += 1
            continue
        # inside quotes
        if ch == quote:
            phase = "word"
        elif ch == escape and quote != "'":
            if i + 1 == n:
                break
            word += ch
            i += 1
            ch = rest[i]
        word += ch
        i += 1
    if blank_ok or word:
        words.append(word)
    return words


def name_values(keyword: str, rest: str, lineno: int = 0, escape: str = "\\") -> list[tuple[str, str]]:
    """Split ENV/LABEL arguments into raw (name, value) pairs: `k=v k2="v 2"` or the legacy `k value`."""
    found = _parse_words(rest, escape)
    if not found:
        raise DockerfileError(f"{keyword} requires at least one argument", lineno)
    if "=" not in found[0]:
        parts = _WHITESPACE_RE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{keyword} must have two arguments", lineno)
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for word in found:
            if "=" not in word:
                raise DockerfileError(f"Syntax error - can't find = in {_go_quote(word)}. "
                                      "Must be of the form: name=value", lineno)
            name, _, value = word.partition("=")
            pairs.append((name, value))
    if any(not name for name, _ in pairs):
        raise DockerfileError(f"{keyword} names can not be blank", lineno)
    return pairs


# -- stages -------------------------------------------------------------------------------------------------------

def _assemble(nodes: list[Instruction], d: _Directives, warnings: list[str]) -> Dockerfile:
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    for inst in nodes:
        _check(inst, d.escape)
        if inst.keyword == "FROM":
            base, name = from_args(inst)
            if name is not None:
                if name in names:
                    raise DockerfileError(f"duplicate stage name {_go_quote(name)}", inst.line)
                names.add(name)
            platform = inst.flags.get("platform", [None])[-1]
            stages.append(Stage(index=len(stages), name=name, base=base, platform=platform, instructions=[],
                                line=inst.line))
        elif stages:
            stages[-1].instructions.append(inst)
        elif inst.keyword == "ARG":
            meta_args.append(inst)  # ARGs before the first FROM are usable in FROM lines only
        else:
            raise DockerfileError("no build stage in current context", inst.line)
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build", 0)
    return Dockerfile(escape=d.escape, directives=dict(d.seen), meta_args=meta_args, stages=stages,
                      warnings=warnings)


# -- the word lexer -----------------------------------------------------------------------------------------------

class LexError(InvalidParameter):
    """A word that the Dockerfile lexer cannot process (unmatched quote, bad substitution)."""


_SPECIAL_PARAMS = "@*#?-$!0"


class _Words:
    """Accumulate the split words while the lexer builds the joined result (shellWord's wordsStruct)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        # Expanded variable values are split on whitespace like unquoted text.
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class Lexer:
    """One pass over one word; the options mirror buildkit's Lex fields of the same names."""

    def __init__(self, escape: str = "\\", env: Mapping[str, str] | None = None, *, raw_quotes: bool = False,
                 raw_escapes: bool = False, skip_unset_env: bool = False) -> None:
        self.escape = escape
        self.env = env
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.src = ""
        self.pos = 0

    # -- scanner ---------------------------------------------------------------------------------------------------
    def _peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    # -- entry points ----------------------------------------------------------------------------------------------
    def process(self, word: str) -> tuple[str, list[str]]:
        """Return (the word with substitutions, the same split into words)."""
        self.src, self.pos = word, 0
        try:
            return self._stop_on_any("", raw_escapes=False)
        except LexError as e:
            raise LexError(f"failed to process {_go_quote(word)}: {e.message}") from None

    # -- grammar ---------------------------------------------------------------------------------------------------
    def _stop_on_any(self, stops: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self._peek():
            ch = self._peek()
            if stops and ch in stops:
                self._next()
                return "".join(result), words.result()
            if ch == "'":
                text = self._single_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == '"':
                text = self._double_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == "$" and self.env is not None:
                text = self._dollar()
                result.append(text)
                words.add_string(text)
            else:
                self._next()
                if ch == self.escape:
                    if self.raw_escapes or raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self._next()
                    if not ch:  # an escape at the very end is dropped
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stops:
            raise LexError(f"unexpected end of statement while looking for matching {stops[0]}")
        return "".join(result), words.result()

    def _single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        quote = self._next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self._next()
            if not ch:
                raise LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        # Literal except $ (substitution) and the escape token before " $ or itself.
        quote = self._next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self._peek()
            if not ch:
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self._next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$" and self.env is not None:
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self._peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        name = ""
        while self._peek():
            ch = self._peek()
            if not name and ch.isdigit():
                while self._peek().isdigit():
                    name += self._next()
                return name
            if not name and ch in _SPECIAL_PARAMS:
                return self._next()
            if not (ch.isalnum() or ch == "_"):
                break
            name += self._next()
        return name

    def _lookup(self, name: str) -> str | None:
        assert self.env is not None
        return self.env.get(name)

    def _dollar(self) -> str:
        self._next()  # the $
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._lookup(name)
            if value is None and self.skip_unset_env:
                return "$" + name
            return value or ""
        self._next()  # the {
        if not self._peek():
            raise LexError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if ch == "}":
            value = self._lookup(name)
            if value is None and self.skip_unset_env:
                return "${" + name + "}"
            return value or ""
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self._next()
            modifier += ch
        if ch in ("+", "-", "?", "#", "%"):
            patterned = ch in "#%"
            if null_is_unset and patterned:
                raise LexError(f"unsupported modifier ({modifier}) in substitution")
            word = self._sub_word("}", raw_escapes=patterned)
            value = self._lookup(name)
            if value is None and self.skip_unset_env:
                return "${" + name + modifier + word + "}"
            unset = value is None or (null_is_unset and value == "")
            if ch == "-":
                return word if unset else (value or "")
            if ch == "+":
                return "" if unset else word
            if ch == "?":
                if value is None:
                    raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
                if unset:
                    raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            # `#`/`%` remove the shortest matching prefix/suffix, `##`/`%%` the longest.
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            return _trim(value or "", word, suffix=(ch == "%"), greedy=greedy)
        if ch == "/" and not null_is_unset:
            replace_all = self._peek() == "/"
            if replace_all:
                self._next()
            pattern = self._sub_word("/}", raw_escapes=True, keep_stop=True)
            replacement = ""
            if self._next() == "/":
                replacement = self._sub_word("}", raw_escapes=False)
            value = self._lookup(name)
            if value is None and self.skip_unset_env:
                return "${" + name + "/" + ("/" if replace_all else "") + pattern + "/" + replacement + "}"
            return _replace(value or "", pattern, replacement, replace_all)
        if not ch:
            raise LexError("syntax error: missing '}'")
        raise LexError(f"unsupported modifier ({modifier}) in substitution")

    def _sub_word(self, stops: str, raw_escapes: bool, keep_stop: bool = False) -> str:
        try:
            word, _ = self._stop_on_any(stops, raw_escapes)
        except LexError:
            if not self._peek():
                raise LexError("syntax error: missing '}'") from None
            raise
        if keep_stop:
            self.pos -= 1  # let the caller see which stop character ended the word
        return word


def _glob_regex(pattern: str) -> str:
    """Translate a shell pattern (as in ${VAR#pattern}) to a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _trim(value: str, pattern: str, suffix: bool, greedy: bool) -> str:
    regex = re.compile(_glob_regex(pattern), re.S)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if greedy else cuts
    for n in order:
        part = value[len(value) - n:] if suffix else value[:n]
        if regex.fullmatch(part):
            return value[:len(value) - n] if suffix else value[n:]
    return value


def _replace(value: str, pattern: str, replacement: str, replace_all: bool) -> str:
    if not pattern:
        return value
    regex = re.compile(_glob_regex(pattern), re.S)
    # The shell replaces the longest match at the leftmost position, like a greedy regex search.
    return regex.sub(lambda m: replacement, value, count=0 if replace_all else 1)


def _go_quote(text: str) -> str:
    """Quote like Go's %q for the common printable cases."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def expand(word: str, env: Mapping[str, str], escape: str = "\\", *, raw_quotes: bool = False) -> str:
    """Substitute variables in one word and remove its quotes and escapes, like Docker's ProcessWord."""
    return Lexer(escape, env, raw_quotes=raw_quotes).process(word)[0]


def expand_heredoc(content: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Substitute variables in a heredoc body as a shell does: quotes are plain text, escapes only before $."""
    lex = Lexer(escape, env)
    lex.src, lex.pos = content, 0
    out: list[str] = []
    try:
        while lex.pos < len(content):
            ch = content[lex.pos]
            nxt = content[lex.pos + 1:lex.pos + 2]
            if ch == escape and nxt in ("$", escape):
                out.append(nxt)
                lex.pos += 2
            elif ch == escape and nxt == "\n":
                lex.pos += 2  # an escaped newline joins the lines
            elif ch == "$":
                out.append(lex._dollar())
            else:
                out.append(ch)
                lex.pos += 1
    except LexError as e:
        raise LexError(f"failed to process heredoc: {e.message}") from None
    return "".join(out)


def words(text: str, env: Mapping[str, str] | None, escape: str = "\\") -> list[str]:
    """Substitute variables (unless env is None), then split into words with quotes removed (ProcessWords)."""
    return Lexer(escape, env).process(text)[1]
