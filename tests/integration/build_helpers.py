"""Helpers for the build tests: write a context, run the CLI's legacy builder, count what an engine holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def write(ctx: Path, files: dict[str, str]) -> Path:
    """Write files (name -> text) under ctx; return ctx."""
    ctx.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return ctx


def build(engine, ctx: Path | str, *args: str, input: str | None = None, timeout: float = 120):
    """Run `docker build` with the legacy builder (DOCKER_BUILDKIT=0)."""
    return engine.docker("build", *args, str(ctx), input=input, env={"DOCKER_BUILDKIT": "0"}, timeout=timeout,
                         text=True)


def inspect(engine, ref: str) -> dict:
    out = engine.docker("image", "inspect", ref, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def history(engine, ref: str) -> list[str]:
    """CreatedBy of every history entry, oldest first."""
    out = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref, text=True)
    assert out.returncode == 0, out.stderr
    return list(reversed(out.stdout.splitlines()))


def counts(engine) -> dict:
    """What a failed build must not change: layer dirs, images (all), containers, build scratch, mounts."""
    root = Path(engine.root)
    layers = sorted(p.name for p in (root / "images" / "layers").iterdir())
    images = engine.docker("images", "-a", "-q", "--no-trunc", text=True).stdout.split()
    containers = engine.docker("ps", "-a", "-q", "--no-trunc", text=True).stdout.split()
    scratch = sorted(p.name for p in (root / "build" / "tmp").iterdir())
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if str(root) in line and "/run/netns" not in line]
    return {"layers": layers, "images": sorted(images), "containers": containers, "scratch": scratch,
            "mounts": mounts}


def layer_files(engine, ref: str) -> list[str]:
    """Every path in every layer dir of an image (relative), to check what a layer carries."""
    data = inspect(engine, ref)["GraphDriver"]["Data"]
    dirs = [data["UpperDir"], *(data.get("LowerDir", "").split(":") if data.get("LowerDir") else [])]
    out = []
    for d in dirs:
        out += [str(p.relative_to(d)) for p in Path(d).rglob("*")]
    return out


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, **kw)
