"""Evaluate parsed Dockerfile instructions into typed values (ENV pairs, argv, COPY specs, image config changes)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping

from engine.build.dockerfile import (
    DockerfileError,
    Heredoc,
    Instruction,
    LexError,
    _check,
    _go_quote,
    _parse_words,
    _WHITESPACE_RE,
    expand as _expand_word,
    expand_heredoc,
    name_values,
    onbuild_trigger,
    parse_heredoc,
    read_instructions,
    words as _split_words,
)
from engine.errors import InvalidParameter

# ARGs every build knows without declaring them; Docker keeps them out of the image history.
PROXY_ARGS: tuple[str, ...] = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                               "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")

DEFAULT_SHELL: tuple[str, ...] = ("/bin/sh", "-c")


@dataclass
class CopySpec:
    """A COPY or ADD after substitution; `heredocs` are inline files (name = file name under dest)."""
    sources: list[str]
    dest: str
    chown: str | None = None
    chmod: str | None = None
    from_: str | None = None
    link: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    parents: bool = False
    checksum: str | None = None
    keep_git_dir: bool = False


def _expand(inst: Instruction, word: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return _expand_word(word, env, escape)
    except LexError as e:
        raise DockerfileError(e.message, inst.line) from None


def _words(inst: Instruction, text: str, env: Mapping[str, str], escape: str) -> list[str]:
    try:
        return _split_words(text, env, escape)
    except LexError as e:
        raise DockerfileError(e.message, inst.line) from None


def _text(inst: Instruction) -> str:
    return inst.args[0] if inst.args and not inst.json else ""


def _flag(inst: Instruction, name: str, env: Mapping[str, str] | None = None, escape: str = "\\") -> str | None:
    values = inst.flags.get(name)
    if not values:
        return None
    return _expand(inst, values[-1], env, escape) if env is not None else values[-1]


def key_values(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> list[tuple[str, str]]:
    """Return the (name, value) pairs of an ENV or LABEL, substituted with the env before this instruction."""
    pairs = name_values(inst.keyword, _text(inst), inst.line, escape)
    return [(_expand(inst, k, env, escape), _expand(inst, v, env, escape)) for k, v in pairs]


def arg_decls(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> list[tuple[str, str | None]]:
    """Return the declarations of an ARG: (name, default or None when it has no `=`)."""
    decls: list[tuple[str, str | None]] = []
    for word in _parse_words(_text(inst), escape):
        name, eq, value = word.partition("=")
        if eq and not name:
            raise DockerfileError("ARG names can not be blank", inst.line)
        decls.append((_expand(inst, name, env, escape), _expand(inst, value, env, escape) if eq else None))
    if not decls:
        raise DockerfileError("ARG requires at least one argument", inst.line)
    return decls


def inline_files(inst: Instruction) -> dict[str, str]:
    """Files a RUN needs mounted (mode 0755) to run a single heredoc script with a #! line: {path: content}."""
    if _is_script(inst):
        heredoc = inst.heredocs[0]
        return {posixpath.join("/dev/pipes", heredoc.name): heredoc.content}
    return {}


def _is_script(inst: Instruction) -> bool:
    return (not inst.json and len(inst.heredocs) >= 1 and parse_heredoc(_text(inst).strip()) is not None
            and inst.heredocs[0].content.startswith("#!"))


def exec_or_shell(inst: Instruction, shell: list[str], env: Mapping[str, str] | None = None,
                  escape: str = "\\") -> tuple[list[str], bool]:
    """Return the argv of a RUN, CMD or ENTRYPOINT, and whether the shell was prepended (shell form).

    Docker does not substitute variables in these (the shell does), so `env` is not used for them.
    A RUN whose whole command is one heredoc runs its content with the shell, or, when it starts with #!,
    runs the file inline_files() names. Other heredocs are appended to the command for the shell to read.
    """
    if inst.json:
        return list(inst.args), False
    text = _text(inst)
    if inst.heredocs:
        only = parse_heredoc(text.strip(), escape)
        if only is not None:
            if _is_script(inst):
                return [posixpath.join("/dev/pipes", inst.heredocs[0].name)], False
            return [*shell, inst.heredocs[0].content], True
        for heredoc in inst.heredocs:
            text += "\n" + heredoc.content + heredoc.name
    if not text and inst.keyword == "ENTRYPOINT":
        return [], False
    return [*shell, text], True


def copy_spec(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> CopySpec:
    """Return the sources, destination and flags of a COPY or ADD, substituted; heredoc sources become files."""
    args = list(inst.args) if inst.json else (_WHITESPACE_RE.split(_text(inst)) if _text(inst) else [])
    if len(args) < 2:
        raise DockerfileError(f"{inst.keyword} requires at least two arguments, but only one was provided. "
                              "Destination could not be determined", inst.line)
    by_name = {h.name: h for h in inst.heredocs}
    sources: list[str] = []
    inline: list[Heredoc] = []
    for src in args[:-1]:
        opened = parse_heredoc(src, escape, inst.line)
        if opened is not None and opened.name in by_name:
            heredoc = by_name[opened.name]
            content = heredoc.content
            if heredoc.expand:
                try:
                    content = expand_heredoc(content, env, escape)
                except LexError as e:
                    raise DockerfileError(e.message, inst.line) from None
            inline.append(Heredoc(name=heredoc.name, content=content, expand=False, chomp=heredoc.chomp,
                                  fd=heredoc.fd))
        else:
            sources.append(_expand(inst, src, env, escape))
    return CopySpec(
        sources=sources, dest=_expand(inst, args[-1], env, escape),
        chown=_flag(inst, "chown", env, escape), chmod=_flag(inst, "chmod", env, escape),
        from_=_flag(inst, "from", env, escape), link=_flag(inst, "link") == "true", heredocs=inline,
        exclude=[_expand(inst, e, env, escape) for e in inst.flags.get("exclude", [])],
        parents=_flag(inst, "parents") == "true", checksum=_flag(inst, "checksum", env, escape),
        keep_git_dir=_flag(inst, "keep-git-dir") == "true")


_DURATION_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(value: str) -> int:
    """Parse a Go duration ("1m30s", "1.5h", "250ms") into nanoseconds, with Go's error messages."""
    text = value
    sign = -1 if text.startswith("-") else 1
    text = text[1:] if text[:1] in ("+", "-") else text
    if text == "0":
        return 0
    if not text:
        raise InvalidParameter(f"time: invalid duration {_go_quote(value)}")
    total = Fraction(0)
    while text:
        m = _DURATION_PART.match(text)
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise InvalidParameter(f"time: invalid duration {_go_quote(value)}")
        if not unit:
            raise InvalidParameter(f"time: missing unit in duration {_go_quote(value)}")
        if unit not in _DURATION_UNITS:
            raise InvalidParameter(f"time: unknown unit {_go_quote(unit)} in duration {_go_quote(value)}")
        number = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += number * _DURATION_UNITS[unit]
        text = text[m.end():]
    return sign * int(total)


def healthcheck(inst: Instruction) -> dict:
    """Return Docker's Healthcheck config for a HEALTHCHECK: {"Test": [...], "Interval": ns, ...}."""
    if not inst.args:
        raise DockerfileError("HEALTHCHECK requires at least one argument", inst.line)
    typ, rest = inst.args[0].upper(), inst.args[1:]
    if typ == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments", inst.line)
        return {"Test": ["NONE"]}
    if typ != "CMD":
        raise DockerfileError(f"Unknown type {_go_quote(typ)} in HEALTHCHECK (try CMD)", inst.line)
    if not rest:
        raise DockerfileError("Missing command after HEALTHCHECK CMD", inst.line)
    check: dict = {"Test": ["CMD", *rest] if inst.json else ["CMD-SHELL", *rest]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        value = _flag(inst, flag)
        if not value:
            continue
        try:
            ns = parse_duration(value)
        except InvalidParameter as e:
            raise DockerfileError(e.message, inst.line) from None
        if ns < 1_000_000:  # Docker's MinimumDuration
            raise DockerfileError(f"Interval {_go_quote(flag)} cannot be less than 1ms", inst.line)
        check[key] = ns
    retries = _flag(inst, "retries")
    if retries:
        if not re.fullmatch(r"[+-]?\d+", retries):
            raise DockerfileError(f"strconv.ParseInt: parsing {_go_quote(retries)}: invalid syntax", inst.line)
        if int(retries) < 1:
            raise DockerfileError(f"--retries must be at least 1 (not {int(retries)})", inst.line)
        check["Retries"] = int(retries)
    return check


def _port_range(inst: Instruction, text: str, what: str) -> range:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not m or not 0 < int(m.group(1)) <= 65535 or (m.group(2) and not int(m.group(1)) <= int(m.group(2)) <= 65535):
        raise DockerfileError(f"invalid {what}: {text}", inst.line)
    return range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)


def expose(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Return the ports of an EXPOSE as "80/tcp" keys, ranges expanded (nat.ParsePortSpecs)."""
    ports: list[str] = []
    for spec in _words(inst, _text(inst), env, escape):
        raw, _, proto = spec.rpartition("/") if "/" in spec else (spec, "", "tcp")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise DockerfileError(f"invalid proto: {proto}", inst.line)
        container = raw.rsplit(":", 1)[-1]  # "ip:hostPort:containerPort" exposes the container port
        for port in _port_range(inst, container, "containerPort"):
            if f"{port}/{proto}" not in ports:
                ports.append(f"{port}/{proto}")
    if not ports:
        raise DockerfileError("EXPOSE requires at least one argument", inst.line)
    return ports


def volumes(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Return the paths of a VOLUME (JSON or whitespace-separated), substituted."""
    raw = list(inst.args) if inst.json else _WHITESPACE_RE.split(_text(inst)) if _text(inst) else []
    paths = [_expand(inst, v, env, escape).strip() for v in raw]
    if not paths:
        raise DockerfileError("VOLUME requires at least one argument", inst.line)
    if any(not p for p in paths):
        raise DockerfileError("VOLUME specified can not be an empty string", inst.line)
    return paths


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned  # normpath keeps a leading "//"


def _one(inst: Instruction, env: Mapping[str, str], escape: str) -> str:
    if not inst.args:
        raise DockerfileError(f"{inst.keyword} requires exactly one argument", inst.line)
    return _expand(inst, _text(inst), env, escape)


def workdir(inst: Instruction, env: Mapping[str, str], escape: str = "\\", current: str = "") -> str:
    """Return the new working directory: substituted, relative paths joined to `current`, cleaned."""
    path = _one(inst, env, escape)
    if not path:
        raise DockerfileError("cannot normalize nothing", inst.line)
    return _clean(path if path.startswith("/") else posixpath.join("/", current or "/", path))


def user(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> str:
    """Return the substituted USER value (name or uid, optionally :group)."""
    return _one(inst, env, escape)


def stopsignal(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> str:
    """Return the substituted STOPSIGNAL value."""
    return _one(inst, env, escape)


def shell(inst: Instruction) -> list[str]:
    """Return the argv prefix of a SHELL (JSON form only)."""
    if not inst.json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form", inst.line)
    if not inst.args:
        raise DockerfileError("SHELL requires at least one argument", inst.line)
    return list(inst.args)


def onbuild(inst: Instruction, escape: str = "\\") -> str:
    """Return the trigger an ONBUILD stores in the image config (the text after ONBUILD, heredocs included)."""
    onbuild_trigger(inst, escape)
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", inst.original)
    for heredoc in inst.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    return expression


# -- `docker commit/import --change` ------------------------------------------------------------------------------

_CHANGE_COMMANDS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL",
                    "ONBUILD", "HEALTHCHECK")


def _env_map(cfg: dict) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in cfg.get("Env") or [])


def apply_changes(cfg: dict, changes: list[str]) -> dict:
    """Apply Dockerfile-like --change instructions (CMD, ENV, EXPOSE, ...) to a container config."""
    text = "\n".join(changes)
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        return cfg
    nodes, escape = read_instructions(text)
    # Docker checks every command before applying any.
    for inst in nodes:
        if inst.keyword not in _CHANGE_COMMANDS:
            raise InvalidParameter(f"{inst.original.split()[0].lower()} is not a valid change command")
        if not inst.args:
            raise InvalidParameter(f"{inst.keyword} requires at least one argument")
        _check(inst, escape)
    cmd_set = False
    for inst in nodes:
        env = _env_map(cfg)
        kw = inst.keyword
        if kw in ("CMD", "ENTRYPOINT"):
            argv, _ = exec_or_shell(inst, list(cfg.get("Shell") or DEFAULT_SHELL))
            cfg["Cmd" if kw == "CMD" else "Entrypoint"] = argv
            if kw == "CMD":
                cmd_set = True
            elif not cmd_set:
                cfg.pop("Cmd", None)  # as in a Dockerfile, ENTRYPOINT resets a CMD it did not set itself
        elif kw == "ENV":
            env.update(key_values(inst, env, escape))
            cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif kw == "LABEL":
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(key_values(inst, env, escape))}
        elif kw == "EXPOSE":
            cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **{p: {} for p in expose(inst, env, escape)}}
        elif kw == "VOLUME":
            cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{v: {} for v in volumes(inst, env, escape)}}
        elif kw == "WORKDIR":
            cfg["WorkingDir"] = workdir(inst, env, escape, cfg.get("WorkingDir") or "/")
        elif kw == "USER":
            cfg["User"] = user(inst, env, escape)
        elif kw == "STOPSIGNAL":
            cfg["StopSignal"] = stopsignal(inst, env, escape)
        elif kw == "ONBUILD":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), onbuild(inst, escape)]
        elif kw == "HEALTHCHECK":
            cfg["Healthcheck"] = healthcheck(inst)
    return cfg
