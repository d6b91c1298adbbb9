"""docker build (legacy builder) through the real CLI: a multi-stage Dockerfile using every instruction."""

import io
import tarfile

import pytest

from tests.integration.build_helpers import build, history, inspect, layer_files, write

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]

DOCKERFILE = '''\
ARG BASE=busybox
FROM ${BASE} AS builder
ARG GREETING=hi
WORKDIR /src
COPY app/ ./
RUN echo "$GREETING" > built.txt
FROM scratch AS unused
COPY --from=builder /src/built.txt /only.txt
FROM busybox
MAINTAINER someone
LABEL org.test=yes
ENV PATH=/usr/bin:/bin:/app/bin APP=/app
COPY --chown=1:2 --chmod=750 app/run.sh /app/bin/
COPY --from=builder /src/built.txt /app/
ADD arch.tar.gz /app/unpacked/
RUN echo done > /app/done && rm /etc/group
EXPOSE 8080 9000/udp
VOLUME /data
USER 1:2
SHELL ["/bin/sh", "-c"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo triggered-by-onbuild
ENTRYPOINT ["/app/bin/run.sh"]
CMD ["arg1"]
'''


def archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"inner\n"
        ti = tarfile.TarInfo("inner.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_multi_stage_build_with_every_instruction(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "app/run.sh": '#!/bin/sh\necho "run $*"\n',
                                   "app/lib/x.txt": "x\n"})
    (ctx / "arch.tar.gz").write_bytes(archive())
    out = build(engine, ctx, "-t", "every:1", "-t", "every:2", "--build-arg", "GREETING=hello",
                "--build-arg", "UNUSED=1")
    assert out.returncode == 0, out.stdout + out.stderr
    # The unused scratch stage is not built: 1 meta ARG + 5 steps of stage 0 + 17 of the last stage.
    assert "Step 1/23 : ARG BASE=busybox" in out.stdout
    assert "Step 2/23 : FROM ${BASE} AS builder" in out.stdout
    assert "/only.txt" not in out.stdout
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in out.stdout
    assert "Successfully tagged every:1" in out.stdout and "Successfully tagged every:2" in out.stdout

    run = engine.docker("run", "--rm", "every:1", text=True)
    assert run.stdout == "run arg1\n", run.stderr
    shell = engine.docker("run", "--rm", "--entrypoint", "sh", "every:1", "-c",
                          "stat -c '%a %u:%g %n' /app/bin/run.sh; cat /app/built.txt /app/unpacked/inner.txt "
                          "/app/done; ls /etc/group 2>&1; id -u; pwd", text=True)
    assert shell.stdout.splitlines() == [
        "750 1:2 /app/bin/run.sh", "hello", "inner", "done",
        "ls: /etc/group: No such file or directory", "1", "/"], shell.stderr

    doc = inspect(engine, "every:1")
    cfg = doc["Config"]
    assert cfg["Entrypoint"] == ["/app/bin/run.sh"] and cfg["Cmd"] == ["arg1"]
    assert cfg["Env"] == ["PATH=/usr/bin:/bin:/app/bin", "APP=/app"]
    assert cfg["Labels"] == {"org.test": "yes"}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "9000/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["User"] == "1:2" and cfg["StopSignal"] == "SIGINT" and cfg["Shell"] == ["/bin/sh", "-c"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert cfg["OnBuild"] == ["RUN echo triggered-by-onbuild"]
    assert doc["Author"] == "someone"
    # busybox's layer, then COPY, COPY --from, ADD and RUN: one layer per filesystem-changing step.
    assert len(doc["RootFS"]["Layers"]) == 5

    hist = history(engine, "every:1")
    assert hist[1:] == [
        "/bin/sh -c #(nop)  MAINTAINER someone",
        "/bin/sh -c #(nop)  LABEL org.test=yes",
        "/bin/sh -c #(nop)  ENV PATH=/usr/bin:/bin:/app/bin APP=/app",
        hist[4], hist[5], hist[6],
        "/bin/sh -c echo done > /app/done && rm /etc/group",
        "/bin/sh -c #(nop)  EXPOSE 8080/tcp 9000/udp",
        "/bin/sh -c #(nop)  VOLUME [/data]",
        "/bin/sh -c #(nop)  USER 1:2",
        "/bin/sh -c #(nop)  SHELL [/bin/sh -c]",
        "/bin/sh -c #(nop)  STOPSIGNAL SIGINT",
        hist[13],
        "/bin/sh -c #(nop)  ONBUILD RUN echo triggered-by-onbuild",
        '/bin/sh -c #(nop)  ENTRYPOINT ["/app/bin/run.sh"]',
        '/bin/sh -c #(nop)  CMD ["arg1"]',
    ]
    assert hist[4].startswith("/bin/sh -c #(nop) COPY --chown=1:2file:") and hist[4].endswith(" in /app/bin/ ")
    assert hist[6].startswith("/bin/sh -c #(nop) ADD file:") and hist[6].endswith(" in /app/unpacked/ ")
    assert hist[13].startswith("/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\"")

    # The RUN layer carries the whiteout of /etc/group, and no layer carries the runtime's mount points.
    files = layer_files(engine, "every:1")
    assert "etc/.wh.group" not in files      # overlay keeps it as a whiteout device, named as the file
    assert not any(f in files for f in ("etc/hosts", "etc/hostname", "etc/resolv.conf"))


def test_onbuild_triggers_run_in_the_child_build(engine, tmp_path):
    base = write(tmp_path / "base", {"Dockerfile": "FROM busybox\nONBUILD RUN echo onbuild-ran > /onbuild\n"})
    assert build(engine, base, "-t", "onbuild-base").returncode == 0
    child = write(tmp_path / "child", {"Dockerfile": "FROM onbuild-base\nCMD [\"cat\", \"/onbuild\"]\n"})
    out = build(engine, child, "-t", "onbuild-child")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "# Executing 1 build trigger" in out.stdout
    assert engine.docker("run", "--rm", "onbuild-child", text=True).stdout == "onbuild-ran\n"
    assert inspect(engine, "onbuild-child")["Config"].get("OnBuild") in (None, [])


def test_target_builds_only_the_stages_it_needs(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox AS a\nRUN echo a > /a\n"
                                         "FROM busybox AS b\nRUN exit 7\n"
                                         "FROM a AS c\nRUN cat /a > /c\n"})
    out = build(engine, ctx, "--target", "c", "-t", "targeted")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "exit 7" not in out.stdout
    assert engine.docker("run", "--rm", "targeted", "cat", "/c", text=True).stdout == "a\n"


def test_quiet_build_prints_only_the_image_id(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo noisy\n"})
    out = build(engine, ctx, "-q", "--label", "built.by=test")
    assert out.returncode == 0, out.stderr
    iid = out.stdout.strip()
    assert iid.startswith("sha256:") and "noisy" not in out.stdout
    assert inspect(engine, iid)["Config"]["Labels"] == {"built.by": "test"}


def test_dockerfile_from_stdin_and_from_outside_the_context(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {"data.txt": "from-context\n"})
    out = build(engine, ctx, "-f", "-", "-t", "stdin-df", input="FROM busybox\nCOPY data.txt /\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert engine.docker("run", "--rm", "stdin-df", "cat", "/data.txt", text=True).stdout == "from-context\n"
    other = write(tmp_path / "elsewhere", {"Build.dockerfile": "FROM busybox\nCOPY data.txt /copied\n"})
    out = build(engine, ctx, "-f", str(other / "Build.dockerfile"), "-t", "outside-df")
    assert out.returncode == 0, out.stdout + out.stderr
    assert engine.docker("run", "--rm", "outside-df", "cat", "/copied", text=True).stdout == "from-context\n"


def test_build_arg_reaches_run_and_history_records_it(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nARG V=default\nRUN echo \"v=$V\" > /v\n"})
    out = build(engine, ctx, "--build-arg", "V=given", "--build-arg", "HTTP_PROXY=http://proxy.invalid",
                "-t", "args")
    assert out.returncode == 0, out.stdout + out.stderr
    assert engine.docker("run", "--rm", "args", "cat", "/v", text=True).stdout == "v=given\n"
    hist = history(engine, "args")
    assert hist[-1] == '|1 V=given /bin/sh -c echo "v=$V" > /v'      # the proxy arg stays out
    assert "V=given" not in inspect(engine, "args")["Config"]["Env"]


def test_scratch_image_from_copied_files(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM scratch\nCOPY hello.txt /\nLABEL kind=scratch\n",
                           "hello.txt": "from scratch\n"})
    out = build(engine, ctx, "-t", "fromscratch")
    assert out.returncode == 0, out.stdout + out.stderr
    doc = inspect(engine, "fromscratch")
    assert len(doc["RootFS"]["Layers"]) == 1 and doc["Config"]["Labels"] == {"kind": "scratch"}
    assert layer_files(engine, "fromscratch") == ["hello.txt"]


def test_rm_false_keeps_the_intermediate_containers(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo kept-container\n"})
    before = set(engine.docker("ps", "-a", "-q", text=True).stdout.split())
    out = build(engine, ctx, "--rm=false", "--no-cache")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Removing intermediate container" not in out.stdout
    kept = set(engine.docker("ps", "-a", "-q", text=True).stdout.split()) - before
    assert len(kept) == 1
    engine.docker("rm", *kept)


def test_memory_limit_reaches_the_run_container(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\n"
                                         "RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                         "/sys/fs/cgroup/memory.max 2>/dev/null; true\n"})
    out = build(engine, ctx, "--memory", "64m", "--no-cache")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "67108864" in out.stdout
