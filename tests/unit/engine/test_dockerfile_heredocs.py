"""Heredocs in RUN, COPY and ADD: delimiters, tab stripping, quoting, several per line."""

import pytest

from engine.build.dockerfile import DockerfileError, Heredoc, parse, parse_heredoc


def only(text):
    return parse(text).stages[0].instructions


def test_run_heredoc_body_is_read_up_to_the_delimiter():
    run, after = only("FROM x\nRUN <<EOF\nset -e\necho $HOME\nEOF\nRUN after\n")
    assert run.args == ["<<EOF"]
    assert run.heredocs == [Heredoc(name="EOF", content="set -e\necho $HOME\n", expand=True, chomp=False)]
    assert (after.args, after.line) == (["after"], 6)


def test_dash_strips_leading_tabs_from_the_body_and_the_delimiter():
    run = only("FROM x\nRUN <<-EOT\n\t\techo a\n\techo\tb\n\tEOT\n")[0]
    assert run.heredocs[0].chomp
    assert run.heredocs[0].content == "echo a\necho\tb\n"


def test_without_dash_a_tab_indented_delimiter_does_not_end_the_body():
    with pytest.raises(DockerfileError, match="line 2: unterminated heredoc"):
        parse("FROM x\nRUN <<EOT\necho\n\tEOT\n")


def test_a_quoted_delimiter_turns_expansion_off():
    docs = only("FROM x\nCOPY <<'A' <<\"B\" <<C /dst/\n$1\nA\n$2\nB\n$3\nC\n")[0].heredocs
    assert [(d.name, d.content, d.expand) for d in docs] == [("A", "$1\n", False), ("B", "$2\n", False),
                                                           ("C", "$3\n", True)]


def test_several_heredocs_on_one_run_line_are_read_in_order():
    run = only("FROM x\nRUN <<FILE1 cat > /f1 && <<FILE2 cat > /f2\none\nFILE1\ntwo\nFILE2\n")[0]
    assert [(d.name, d.content) for d in run.heredocs] == [("FILE1", "one\n"), ("FILE2", "two\n")]


def test_file_descriptor_prefix_is_kept():
    run = only("FROM x\nRUN python3 3<<EOF\nprint(1)\nEOF\n")[0]
    assert (run.heredocs[0].fd, run.heredocs[0].name) == (3, "EOF")


def test_heredocs_apply_only_to_run_copy_add_in_shell_form():
    cmd, run = only('FROM x\nCMD cat <<EOF\nRUN ["cat", "<<EOF"]\n')
    assert cmd.heredocs == [] and run.heredocs == []


def test_onbuild_run_may_carry_a_heredoc():
    inst = only("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n")[0]
    assert inst.heredocs[0].content == "echo hi\n"


def test_heredoc_body_lines_are_not_instructions_or_comments():
    run = only("FROM x\nRUN <<EOF\n# not a comment\nFROM y\nline \\\nEOF\n")[0]
    assert run.heredocs[0].content == "# not a comment\nFROM y\nline \\\n"


def test_a_missing_delimiter_is_an_unterminated_heredoc():
    with pytest.raises(DockerfileError, match="dockerfile parse error on line 2: unterminated heredoc"):
        parse("FROM x\nCOPY <<EOF /dst\nhello\n")


def test_parse_heredoc_recognises_only_heredoc_words():
    assert parse_heredoc("<<EOF") == Heredoc(name="EOF", content="", expand=True, chomp=False, fd=0)
    assert parse_heredoc('<<-"EOF"').chomp and not parse_heredoc('<<-"EOF"').expand
    assert parse_heredoc("<<E'O'F").name == "EOF" and not parse_heredoc("<<E'O'F").expand
    for word in ("<<", "cat<<EOF", "<<<EOF", "file", "<<two words"):
        assert parse_heredoc(word) is None, word
