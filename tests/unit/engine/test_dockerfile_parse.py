"""Dockerfile reading: parser directives, continuations, comments, exec vs shell form, stages and flags."""

from engine.build.dockerfile import parse


def only(text):
    """The instructions of the first stage."""
    return parse(text).stages[0].instructions


def test_directives_are_read_case_insensitively_before_anything_else():
    df = parse("# Syntax = docker/dockerfile:1\n#ESCAPE=`\nFROM x\nRUN a `\n  b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.escape == "`"
    assert only("#escape=`\nFROM x\nRUN a `\n  b\n")[0].args == ["a   b"]


def test_directives_after_a_comment_blank_line_or_instruction_are_plain_comments():
    for text in ("# comment\n# escape=`\nFROM x\n", "\n# escape=`\nFROM x\n", "FROM x\n# escape=`\n",
                 "# unknown=1\n# escape=`\nFROM x\n"):
        df = parse(text)
        assert df.escape == "\\" and "escape" not in df.directives, text


def test_windows_escape_keeps_backslashes_literal():
    inst = only("# escape=`\nFROM x\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n  && echo ok\n")
    assert inst[0].args == ["testfile.txt c:\\"]
    assert inst[1].args == ["dir c:\\   && echo ok"]


def test_continuations_join_lines_and_skip_comment_and_empty_lines():
    df = parse("FROM x\nRUN apt-get update && \\\n  # a comment inside\n\n    apt-get install -y \\\n"
               "      curl\nRUN next\n")
    run, nxt = df.stages[0].instructions
    assert run.args == ["apt-get update &&     apt-get install -y       curl"]
    assert run.line == 2 and nxt.line == 7
    assert df.warnings and "Empty continuation line" in df.warnings[0]


def test_an_escaped_escape_at_the_end_is_not_a_continuation():
    first, second = only("FROM x\nRUN echo \\\\\nRUN b\n")
    assert first.args == ["echo \\\\"] and second.args == ["b"]


def test_trailing_spaces_after_the_continuation_token_are_allowed_and_crlf_is_accepted():
    assert only("FROM x\nRUN a \\   \n b\n")[0].args == ["a  b"]
    assert only("\ufeffFROM x\r\nRUN a \\\r\n b\r\n")[0].args == ["a  b"]
    assert parse(b"\xef\xbb\xbfFROM x\n").stages[0].base == "x"


def test_comments_and_indentation_are_ignored_and_keywords_are_case_insensitive():
    inst = only("  # leading comment\nfrom x\n    run echo hi # not a comment\n\tCmd [\"a\"]\n")
    assert [(i.keyword, i.args, i.json) for i in inst] == [("RUN", ["echo hi # not a comment"], False),
                                                           ("CMD", ["a"], True)]


def test_exec_form_is_json_and_invalid_json_falls_back_to_shell_form():
    run, cmd, entry, volume, copy = only(
        'FROM x\nRUN ["echo", "a b"]\nCMD [\'single\', "quotes"]\nENTRYPOINT ["x"] trailing\n'
        'VOLUME ["/a", "/b"]\nCOPY ["a b", "/dst/"]\n')
    assert (run.args, run.json) == (["echo", "a b"], True)
    assert (cmd.args, cmd.json) == (["['single', \"quotes\"]"], False)
    assert (entry.args, entry.json) == (['["x"] trailing'], False)
    assert (volume.args, volume.json) == (["/a", "/b"], True)
    assert (copy.args, copy.json) == (["a b", "/dst/"], True)
    assert only("FROM x\nCMD []\n")[0].args == [] and only("FROM x\nCMD []\n")[0].json


def test_meta_args_stages_names_and_platforms():
    df = parse("ARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM ${BASE}:${V} AS Builder\nRUN make\n"
               "FROM scratch\nCOPY --from=builder /out /\n")
    assert [a.args for a in df.meta_args] == [["BASE=alpine"], ["V"]]
    first, second = df.stages
    assert (first.index, first.name, first.base, first.platform, first.line) == \
        (0, "builder", "${BASE}:${V}", "$BUILDPLATFORM", 3)
    assert [i.keyword for i in first.instructions] == ["RUN"]
    assert (second.index, second.name, second.base, second.platform) == (1, None, "scratch", None)
    assert second.instructions[0].flags == {"from": ["builder"]}


def test_from_accepts_as_in_any_case():
    assert parse("FROM x as One\nFROM y As two\n").stages[1].name == "two"


def test_flags_are_parsed_per_instruction():
    copy, add, run = only("FROM x\nCOPY --from=b --chown=1:1 --chmod=644 --link a /b\n"
                          "ADD --link=false --exclude=*.md --exclude=*.txt a /b\n"
                          "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none make\n")
    assert copy.flags == {"from": ["b"], "chown": ["1:1"], "chmod": ["644"], "link": ["true"]}
    assert copy.args == ["a /b"]
    assert add.flags == {"link": ["false"], "exclude": ["*.md", "*.txt"]}
    assert run.flags == {"mount": ["type=cache,target=/c", "type=tmpfs,target=/t"], "network": ["none"]}
    assert run.args == ["make"]


def test_flag_values_may_be_quoted_and_a_double_dash_ends_flags():
    copy = only('FROM x\nCOPY --chown="app user" -- --weird-name /dst\n')[0]
    assert copy.flags == {"chown": ["app user"]}
    assert copy.args == ["--weird-name /dst"]


def test_original_and_line_numbers_are_kept():
    inst = only("FROM x\n\n# c\nRUN a \\\n  b\nENV A=1\n")
    assert [(i.line, i.original) for i in inst] == [(4, "RUN a   b"), (6, "ENV A=1")]


def test_healthcheck_args_carry_the_type_then_the_command():
    none, shell, exec_ = only("FROM x\nHEALTHCHECK NONE\nHEALTHCHECK --retries=3 CMD curl -f http://x/\n"
                              'HEALTHCHECK CMD ["curl", "-f"]\n')
    assert (none.args, none.json) == (["NONE"], False)
    assert (shell.args, shell.json, shell.flags) == (["CMD", "curl -f http://x/"], False, {"retries": ["3"]})
    assert (exec_.args, exec_.json) == (["CMD", "curl", "-f"], True)


def test_onbuild_keeps_the_trigger_text():
    inst = only("FROM x\nONBUILD COPY --chown=1 . /app\n")[0]
    assert (inst.keyword, inst.args, inst.flags) == ("ONBUILD", ["COPY --chown=1 . /app"], {})
