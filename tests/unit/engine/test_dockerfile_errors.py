"""Dockerfiles Docker rejects are rejected with Docker's message and the instruction's line number."""

import pytest

from engine.build.dockerfile import DockerfileError, parse
from engine.errors import InvalidParameter

ERRORS = [
    ("FROM x\nFOO bar\n", 2, "unknown instruction: FOO (did you mean FROM?)"),
    ("FROM x\nFOOBAR baz\n", 2, "unknown instruction: FOOBAR"),
    ("FROM x\nRUNN make\n", 2, "unknown instruction: RUNN (did you mean RUN?)"),
    ("FROM x\ncopyy a b\n", 2, "unknown instruction: copyy (did you mean copy?)"),
    ("RUN make\nFROM x\n", 1, "no build stage in current context"),
    ("ARG A\nENV B=1\nFROM x\n", 2, "no build stage in current context"),
    ("# escape=\\\n# escape=`\nFROM x\n", 2, "only one escape parser directive can be used"),
    ("# escape=x\nFROM x\n", 1, "invalid escape token 'x' does not match ` or \\"),
    ("FROM x\nENV =x\n", 2, "ENV names can not be blank"),
    ("FROM x\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM x\nENV a\n", 2, "ENV must have two arguments"),
    ("FROM x\nLABEL a=1 b\n", 2, 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
    ("FROM x\nARG\n", 2, "ARG requires at least one argument"),
    ("FROM x\nARG =v\n", 2, "ARG names can not be blank"),
    ("FROM x AS 1st\n", 1, 'invalid name for build stage: "1st", name can\'t start with a number or contain symbols'),
    ("FROM x AS\n", 1, "FROM requires either one or three arguments"),
    ("FROM\n", 1, "FROM requires either one or three arguments"),
    ("FROM x AS a\nFROM y AS A\n", 2, 'duplicate stage name "a"'),
    ("FROM x\nCOPY --foo=1 a b\n", 2, "unknown flag: foo (did you mean from?)"),
    ("FROM x\nRUN --chown=1 make\n", 2, "unknown flag: chown"),
    ("FROM x\nENV --x=1 A=1\n", 2, "unknown flag: x"),
    ("FROM --plattform=linux x\n", 1, "unknown flag: plattform (did you mean platform?)"),
    ("FROM x\nCOPY --from a b\n", 2, "missing a value on flag: from"),
    ("FROM x\nCOPY --link=maybe a b\n", 2, "expecting boolean value for flag link, not: maybe"),
    ("FROM x\nCOPY --link= a b\n", 2, "missing a value on flag: link"),
    ("FROM x\nCOPY --from=a --from=b a b\n", 2, "duplicate flag specified: from"),
    ("FROM x\nCOPY a\n", 2, "COPY requires at least two arguments, but only one was provided. "
                            "Destination could not be determined"),
    ("FROM x\nADD a <<EOF\nEOF\n", 2, "ADD cannot accept a heredoc as a destination"),
    ("FROM x\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM x\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM x\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM x\nVOLUME [\"\"]\n", 2, "VOLUME specified can not be an empty string"),
    ("FROM x\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM x\nSHELL []\n", 2, "SHELL requires at least one argument"),
    ("FROM x\nRUN [\"a\", 1]\n", 2, "when using JSON array syntax, arrays must be comprised of strings only"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM x\nONBUILD FROM y\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM x\nonbuild maintainer me\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM x\nONBUILD\n", 2, "ONBUILD requires at least one argument"),
    ("FROM x\nONBUILD COPY --nope a b\n", 2, "unknown flag: nope"),
    ("FROM x\nHEALTHCHECK\n", 2, "HEALTHCHECK requires at least one argument"),
    ("FROM x\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM x\nHEALTHCHECK TEST x\n", 2, 'Unknown type "TEST" in HEALTHCHECK (try CMD)'),
    ("FROM x\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM x\nHEALTHCHECK --interval=0s CMD x\n", 2, 'Interval "interval" cannot be less than 1ms'),
    ("FROM x\nHEALTHCHECK --timeout=5 CMD x\n", 2, 'time: missing unit in duration "5"'),
    ("FROM x\nHEALTHCHECK --retries=0 CMD x\n", 2, "--retries must be at least 1 (not 0)"),
    ("FROM x\nHEALTHCHECK --retries=x CMD x\n", 2, 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("FROM x\nHEALTHCHECK --start-period=1y CMD x\n", 2, 'time: unknown unit "y" in duration "1y"'),
    ("FROM x\nRUN <<EOF\nno end\n", 2, "unterminated heredoc"),
]


@pytest.mark.parametrize("text,line,message", ERRORS)
def test_docker_rejects_with_its_message_and_line(text, line, message):
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    assert caught.value.line == line
    assert caught.value.reason == message
    assert str(caught.value) == f"dockerfile parse error on line {line}: {message}"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "# syntax=docker/dockerfile:1\n"])
def test_a_file_without_instructions_is_rejected(text):
    with pytest.raises(DockerfileError, match="^file with no instructions$"):
        parse(text)


def test_only_meta_args_is_no_stage_to_build():
    with pytest.raises(DockerfileError, match="^dockerfile contains no stages to build$"):
        parse("ARG A=1\n")


def test_dockerfile_errors_are_invalid_parameters_for_the_api():
    with pytest.raises(InvalidParameter):
        parse("FOO\n")


def test_the_first_error_in_file_order_is_reported():
    with pytest.raises(DockerfileError) as caught:
        parse("FROM x\nRUN ok\nCOPY a\nFOO\n")
    assert caught.value.line == 3
