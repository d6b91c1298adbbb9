"""Typed evaluation of parsed instructions: substitution where Docker does it, argv, COPY specs, config values."""

import pytest

from engine.build import instructions as ins
from engine.build.dockerfile import DockerfileError, parse


def one(line, prefix="FROM x\n"):
    return parse(prefix + line).stages[0].instructions[0]


def test_env_pairs_use_the_env_before_the_instruction():
    env = {"abc": "hello"}
    assert ins.key_values(one("ENV abc=bye def=$abc"), env) == [("abc", "bye"), ("def", "hello")]
    assert ins.key_values(one('ENV A="two words" B=a\\ b C=\'$abc\''), env) == \
        [("A", "two words"), ("B", "a b"), ("C", "$abc")]


def test_legacy_env_form_keeps_the_rest_of_the_line_as_the_value():
    assert ins.key_values(one("ENV GREETING hello   $who"), {"who": "you"}) == [("GREETING", "hello   you")]


def test_label_keys_may_be_quoted_and_substituted():
    inst = one('LABEL "com.example.vendor"="ACME Inc" version=${V:-1.0} multi.label1="a" other=b')
    assert ins.key_values(inst, {}) == [("com.example.vendor", "ACME Inc"), ("version", "1.0"),
                                        ("multi.label1", "a"), ("other", "b")]


def test_arg_declarations_with_and_without_defaults():
    assert ins.arg_decls(one("ARG A B=1 C=\"x y\" D=$B"), {"B": "env"}) == \
        [("A", None), ("B", "1"), ("C", "x y"), ("D", "env")]
    assert ins.arg_decls(one("ARG EMPTY="), {}) == [("EMPTY", "")]


def test_proxy_args_are_predefined():
    assert {"HTTP_PROXY", "https_proxy", "NO_PROXY", "ALL_PROXY", "all_proxy"} <= set(ins.PROXY_ARGS)


def test_exec_form_is_kept_and_shell_form_gets_the_shell():
    sh = ["/bin/sh", "-c"]
    assert ins.exec_or_shell(one('CMD ["echo", "$HOME"]'), sh) == (["echo", "$HOME"], False)
    assert ins.exec_or_shell(one("RUN echo $HOME && ls"), sh) == (["/bin/sh", "-c", "echo $HOME && ls"], True)
    assert ins.exec_or_shell(one("ENTRYPOINT exec app"), ["bash", "-lc"]) == (["bash", "-lc", "exec app"], True)


def test_a_run_of_one_heredoc_runs_its_body_with_the_shell():
    run = one("RUN <<EOF\necho a\necho b\nEOF\n")
    assert ins.exec_or_shell(run, ["/bin/sh", "-c"]) == (["/bin/sh", "-c", "echo a\necho b\n"], True)
    assert ins.inline_files(run) == {}


def test_a_heredoc_script_with_a_shebang_runs_as_a_file():
    run = one("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n")
    assert ins.exec_or_shell(run, ["/bin/sh", "-c"]) == (["/dev/pipes/EOF"], False)
    assert ins.inline_files(run) == {"/dev/pipes/EOF": "#!/usr/bin/env python3\nprint(1)\n"}


def test_heredocs_inside_a_longer_command_are_handed_to_the_shell():
    run = one("RUN cat <<EOF > /f\nhello\nEOF\n")
    assert ins.exec_or_shell(run, ["/bin/sh", "-c"]) == (["/bin/sh", "-c", "cat <<EOF > /f\nhello\nEOF"], True)


def test_copy_spec_substitutes_sources_destination_and_flags():
    env = {"SRC": "app", "U": "1000", "STAGE": "builder"}
    spec = ins.copy_spec(one("COPY --from=$STAGE --chown=$U:$U --chmod=755 --link $SRC/a.txt ${SRC}/b /opt/$SRC/"),
                         env)
    assert (spec.sources, spec.dest) == (["app/a.txt", "app/b"], "/opt/app/")
    assert (spec.from_, spec.chown, spec.chmod, spec.link) == ("builder", "1000:1000", "755", True)
    json_spec = ins.copy_spec(one('ADD ["my file", "$SRC", "/dst dir/"]'), env)
    assert (json_spec.sources, json_spec.dest, json_spec.from_, json_spec.link) == \
        (["my file", "app"], "/dst dir/", None, False)


def test_copy_heredoc_sources_become_inline_files_expanded_unless_quoted():
    spec = ins.copy_spec(one("COPY <<one.txt <<'two.txt' /dst/\nhi \"$N\"\none.txt\nraw $N\ntwo.txt\n"),
                         {"N": "7"})
    assert spec.sources == [] and spec.dest == "/dst/"
    assert [(h.name, h.content) for h in spec.heredocs] == [("one.txt", 'hi "7"\n'), ("two.txt", "raw $N\n")]


def test_healthcheck_config_like_docker():
    cfg = ins.healthcheck(one("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s "
                              "--start-interval=2s --retries=3 CMD curl -f http://localhost/"))
    assert cfg == {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 90_000_000_000,
                   "Timeout": 500_000_000, "StartPeriod": 1_500_000_000, "StartInterval": 2_000_000_000,
                   "Retries": 3}
    assert ins.healthcheck(one('HEALTHCHECK CMD ["/bin/check", "-q"]')) == {"Test": ["CMD", "/bin/check", "-q"]}
    assert ins.healthcheck(one("healthcheck none")) == {"Test": ["NONE"]}


def test_go_durations():
    assert ins.parse_duration("0") == 0
    assert ins.parse_duration("1h2m3s4ms5us6ns") == 3_723_004_005_006
    assert ins.parse_duration(".5s") == 500_000_000
    assert ins.parse_duration("-1.5m") == -90_000_000_000
    for bad in ("", "s", "1", "1x", "1.s.", "--1s"):
        with pytest.raises(Exception, match="time: "):
            ins.parse_duration(bad)


def test_expose_normalizes_protocols_ranges_and_substitutes():
    assert ins.expose(one("EXPOSE 80 53/UDP 8000-8002/tcp $P"), {"P": "9000/sctp 9001"}) == \
        ["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "9000/sctp", "9001/tcp"]
    with pytest.raises(DockerfileError, match="invalid proto: icmp"):
        ins.expose(one("EXPOSE 80/icmp"), {})
    with pytest.raises(DockerfileError, match="invalid containerPort: http"):
        ins.expose(one("EXPOSE http"), {})


def test_volumes_from_json_or_words_are_substituted():
    assert ins.volumes(one('VOLUME ["/data", "$D"]'), {"D": "/logs"}) == ["/data", "/logs"]
    assert ins.volumes(one("VOLUME /a ${D}"), {"D": "/b"}) == ["/a", "/b"]


def test_workdir_joins_relative_paths_and_cleans():
    env = {"APP": "srv"}
    assert ins.workdir(one("WORKDIR /opt/$APP/../x/"), env) == "/opt/x"
    assert ins.workdir(one("WORKDIR sub"), env, current="/opt") == "/opt/sub"
    assert ins.workdir(one("WORKDIR ${APP}"), env) == "/srv"


def test_user_stopsignal_shell_and_onbuild():
    assert ins.user(one("USER ${U:-app}:staff"), {}) == "app:staff"
    assert ins.stopsignal(one("STOPSIGNAL $S"), {"S": "SIGQUIT"}) == "SIGQUIT"
    assert ins.shell(one('SHELL ["/bin/bash", "-o", "pipefail", "-c"]')) == ["/bin/bash", "-o", "pipefail", "-c"]
    assert ins.onbuild(one("ONBUILD  RUN echo $HOME")) == "RUN echo $HOME"
    assert ins.onbuild(one("onbuild RUN <<EOF\necho hi\nEOF\n")) == "RUN <<EOF\necho hi\nEOF"


def test_substitution_errors_carry_the_line():
    with pytest.raises(DockerfileError, match="dockerfile parse error on line 3: .*bad substitution"):
        ins.user(parse("FROM x\n\nUSER ${}\n").stages[0].instructions[0], {})


def test_heredoc_bodies_keep_quotes_and_backslashes_like_a_shell():
    spec = ins.copy_spec(one("COPY <<conf /etc/app.conf\nit's \"$N\" C:\\dir \\$N ${N:-x}\nconf\n"), {"N": "7"})
    assert spec.heredocs[0].content == "it's \"7\" C:\\dir $N 7\n"
