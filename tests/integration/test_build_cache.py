"""The build cache: an unchanged rebuild reuses every step, a changed COPY source rebuilds from that step."""

import os
import re
from pathlib import Path

import pytest

from tests.integration.build_helpers import build, write

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]

DOCKERFILE = "FROM busybox\nENV A=1\nRUN echo one > /one\nCOPY src/ /src/\nRUN cat /src/f > /copied\nCMD [\"sh\"]\n"


def built_id(stdout: str) -> str:
    return re.search(r"Successfully built ([0-9a-f]{12})", stdout).group(1)


def layer_dirs(engine) -> dict[str, float]:
    layers = Path(engine.root) / "images" / "layers"
    return {p.name: os.stat(p).st_mtime for p in layers.iterdir()}


def test_unchanged_rebuild_uses_the_cache_for_every_step_and_touches_no_layer(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": DOCKERFILE, "src/f": "first\n"})
    first = build(engine, ctx, "-t", "cached")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Using cache" not in first.stdout
    before = layer_dirs(engine)
    second = build(engine, ctx, "-t", "cached")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count(" ---> Using cache") == 5         # every step after FROM
    assert " ---> Running in " not in second.stdout
    assert built_id(second.stdout) == built_id(first.stdout)
    assert layer_dirs(engine) == before


def test_changed_copy_source_rebuilds_from_that_step(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": DOCKERFILE, "src/f": "first\n"})
    first = build(engine, ctx, "-t", "changing")
    assert first.returncode == 0, first.stdout + first.stderr
    (ctx / "src" / "f").write_text("second\n")
    second = build(engine, ctx, "-t", "changing")
    assert second.returncode == 0, second.stdout + second.stderr
    steps = second.stdout.split("Step ")[1:]
    cached = ["Using cache" in s for s in steps]
    assert cached == [False, True, True, False, False, False]      # FROM, ENV, RUN cached; COPY onwards not
    assert built_id(second.stdout) != built_id(first.stdout)
    assert engine.docker("run", "--rm", "changing", "cat", "/copied", text=True).stdout == "second\n"


def test_mode_change_of_a_copy_source_misses_the_cache(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nCOPY run.sh /\n", "run.sh": "echo\n"})
    assert build(engine, ctx).returncode == 0
    os.chmod(ctx / "run.sh", 0o755)
    again = build(engine, ctx)
    assert again.returncode == 0 and "Using cache" not in again.stdout


def test_no_cache_runs_every_step_again(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo fresh\n"})
    assert build(engine, ctx).returncode == 0
    again = build(engine, ctx, "--no-cache")
    assert again.returncode == 0
    assert "Using cache" not in again.stdout and " ---> Running in " in again.stdout


def test_builder_prune_forgets_the_cache(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo pruned\n"})
    assert build(engine, ctx).returncode == 0
    pruned = engine.docker("builder", "prune", "-f", text=True)
    assert pruned.returncode == 0, pruned.stderr
    again = build(engine, ctx)
    assert again.returncode == 0 and "Using cache" not in again.stdout


def test_system_df_lists_the_build_cache_and_builder_prune_empties_it(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN head -c 30000 /dev/zero > /z\nENV B=2\n"})
    out = build(engine, ctx, "-t", "dfcache")
    assert out.returncode == 0, out.stdout + out.stderr
    cache = engine.client().df()["BuildCache"]
    by_step = {c["Description"]: c for c in cache}
    run = next(c for d, c in by_step.items() if "head -c 30000" in d)
    assert run["Size"] >= 30000 and run["Type"] == "regular"
    env = next(c for d, c in by_step.items() if "ENV B=2" in d)
    assert env["Size"] == 0 and env["InUse"]                 # the tagged image is this step's image
    pruned = engine.docker("builder", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert engine.client().df()["BuildCache"] == []
