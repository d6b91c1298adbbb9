"""Variable substitution and word splitting: buildkit's envVarTest and wordsTest tables, plus the escape token."""

import pytest

from engine.build.dockerfile import LexError, expand, words

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# (source, expected or "error") — buildkit frontend/dockerfile/shell/envVarTest, Unix rows, plus the
# ${VAR-d} ${VAR+a} forms (unset vs empty), pattern removal/replacement and the $$ special parameter.
EXPAND = [
    ('hello', 'hello'),
    ("he'll'o", 'hello'),
    ("he'llo", 'error'),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", 'error'),
    ('abc\\tdef', 'abctdef'),
    ('"abc\\tdef"', 'abc\\tdef'),
    ('"abc\\\\tdef"', 'abc\\tdef'),
    ("'abc\\tdef'", 'abc\\tdef'),
    ('hello\\', 'hello'),
    ('hello\\\\', 'hello\\'),
    ('"hello', 'error'),
    ('"hello\\"', 'error'),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", 'error'),
    ("'hello\\'", 'hello\\'),
    ("'hello\\there'", 'hello\\there'),
    ("'hello\\\\there'", 'hello\\\\there'),
    ('"\'\'"', "''"),
    ('$.', '$.'),
    ('he$1x', 'hex'),
    ('he$.x', 'he$.x'),
    ('he$pwd.', 'he.'),
    ('he$PWD', 'he/home'),
    ('he\\$PWD', 'he$PWD'),
    ('he\\\\$PWD', 'he\\/home'),
    ('"he\\$PWD"', 'he$PWD'),
    ('"he\\\\$PWD"', 'he\\/home'),
    ('\\${}', '${}'),
    ('\\${}aaa', '${}aaa'),
    ('he\\${}', 'he${}'),
    ('he\\${}xx', 'he${}xx'),
    ('${}', 'error'),
    ('${}aaa', 'error'),
    ('he${}', 'error'),
    ('he${}xx', 'error'),
    ('he${hi}', 'he'),
    ('he${hi}xx', 'hexx'),
    ('he${PWD}', 'he/home'),
    ('he${.}', 'error'),
    ('he${XXX:-000}xx', 'he000xx'),
    ('he${PWD:-000}xx', 'he/homexx'),
    ('he${XXX:-$PWD}xx', 'he/homexx'),
    ('he${XXX:-${PWD:-yyy}}xx', 'he/homexx'),
    ('he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'),
    ('he${XXX:YYY}', 'error'),
    ('he${XXX?}', 'error'),
    ('he${XXX:?}', 'error'),
    ('he${PWD?}', 'he/home'),
    ('he${PWD:?}', 'he/home'),
    ('he${NULL?}', 'he'),
    ('he${NULL:?}', 'error'),
    ('he${XXX:+${PWD}}xx', 'hexx'),
    ('he${PWD:+${XXX}}xx', 'hexx'),
    ('he${PWD:+${SHELL}}xx', 'hebashxx'),
    ('he${XXX:+000}xx', 'hexx'),
    ('he${PWD:+000}xx', 'he000xx'),
    ("'he${XX}'", 'he${XX}'),
    ('"he${PWD}"', 'he/home'),
    ('"he\'$PWD\'"', "he'/home'"),
    ('"$PWD"', '/home'),
    ("'$PWD'", '$PWD'),
    ("'\\$PWD'", '\\$PWD'),
    ('\'"hello"\'', '"hello"'),
    ("'he\\$PWD'", 'he\\$PWD'),
    ('he${PWD', 'error'),
    ('he${PWD:=000}xx', 'error'),
    ('he${PWD:+${PWD}:}xx', 'he/home:xx'),
    ('he${XXX:-\\$PWD:}xx', 'he$PWD:xx'),
    ('he${XXX:-\\${PWD}z}xx', 'he${PWDz}xx'),
    ('안녕하세요', '안녕하세요'),
    ("안'녕'하세요", '안녕하세요'),
    ("안'녕하세요", 'error'),
    ("안녕\\'하세요", "안녕'하세요"),
    ('"안녕\\\\하세요"', '안녕\\하세요'),
    ('안\\\\녕하세요', '안\\녕하세요'),
    ('$KOREAN', '한국어'),
    ('안녕$KOREAN', '안녕한국어'),
    ('${a:-b}', 'b'),
    ('${a-b}', 'b'),
    ('${NULL:-b}', 'b'),
    ('${NULL-b}', ''),
    ('${NULL:+b}', ''),
    ('${NULL+b}', 'b'),
    ('${PWD#/}', 'home'),
    ('${PWD%me}', '/ho'),
    ('${SHELL/a/o}', 'bosh'),
    ('$$', ''),
]

# (env lines applied in order, source, expected words) — buildkit's wordsTest.
WORDS = [
    ({}, 'hello', ['hello']),
    ({}, 'hello${hi}bye', ['hellobye']),
    ({'hi': 'hi'}, 'hello${hi}bye', ['hellohibye']),
    ({'hi': 'hi', 'space': 'abc  def'}, 'hello${space}bye', ['helloabc', 'defbye']),
    ({'hi': 'hi', 'space': 'abc  def'}, 'hello"${space}"bye', ['helloabc  defbye']),
    ({'hi': 'hi', 'space': 'abc  def'}, 'hello "${space}"bye', ['hello', 'abc  defbye']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c'}, 'hello${leading}def', ['hello', 'ab', 'cdef']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c'}, 'hello"${leading}" def', ['hello  ab c', 'def']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c'}, 'hello"${leading}"', ['hello  ab c']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c'}, 'hello${leading}', ['hello', 'ab', 'c']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hello${trailing}', ['helloab', 'c']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hello${trailing}d', ['helloab', 'c', 'd']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hello"${trailing}"d', ['helloab c   d']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hel"lo${trailing}"', ['helloab c   ']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hello" there  "', ['hello there  ']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}, 'hello there', ['hello', 'there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}, 'hello\\ there', ['hello there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}, 'hello" there', ['error']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hello\\" there', ['hello"', 'there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     'hello"\\\\there"', ['hello\\there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}, 'hello"\\there"', ['hello\\there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '},
     "hello'\\\\there'", ['hello\\\\there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}, "hello'\\there'", ['hello\\there']),
    ({'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}, "hello'$there'", ['hello$there']),
]



@pytest.mark.parametrize("source,expected", EXPAND)
def test_expand_matches_buildkit_env_var_table(source, expected):
    if expected == "error":
        with pytest.raises(LexError):
            expand(source, ENV)
    else:
        assert expand(source, ENV) == expected


@pytest.mark.parametrize("env,source,expected", WORDS)
def test_words_matches_buildkit_words_table(env, source, expected):
    if expected == ["error"]:
        with pytest.raises(LexError):
            words(source, env)
    else:
        assert words(source, env) == expected


def test_unset_and_empty_differ_only_without_the_colon():
    env = {"EMPTY": ""}
    assert expand("${EMPTY-d}|${EMPTY:-d}|${UNSET-d}", env) == "|d|d"
    assert expand("${EMPTY+a}|${EMPTY:+a}|${UNSET+a}", env) == "a||"


def test_error_messages_name_the_word_and_the_problem():
    with pytest.raises(LexError, match=r'failed to process "\$\{A:\?must be set\}": A: must be set'):
        expand("${A:?must be set}", {})
    with pytest.raises(LexError, match="unexpected end of statement while looking for matching double-quote"):
        expand('"open', {})
    with pytest.raises(LexError, match="bad substitution"):
        expand("${}", {})
    with pytest.raises(LexError, match="missing '}'"):
        expand("${A", {})
    with pytest.raises(LexError, match=r"unsupported modifier \(:=\) in substitution"):
        expand("${A:=x}", {})


def test_pattern_removal_shortest_and_longest():
    env = {"F": "archive.tar.gz"}
    assert expand("${F%.*}", env) == "archive.tar"
    assert expand("${F%%.*}", env) == "archive"
    assert expand("${F#*.}", env) == "tar.gz"
    assert expand("${F##*.}", env) == "gz"
    assert expand("${F//a/A}", env) == "Archive.tAr.gz"


def test_backtick_escape_token_escapes_instead_of_backslash():
    env = {"A": "x"}
    assert expand("`$A", env, escape="`") == "$A"
    assert expand("c:\\dir\\$A", env, escape="`") == "c:\\dir\\x"
    assert words('a` b "c`"d"', env, escape="`") == ["a b", 'c"d']


def test_words_without_env_keeps_dollars_literal():
    assert words("a $B '${C}' \\$D", None) == ["a", "$B", "${C}", "$D"]


def test_raw_quotes_keep_the_quotes_and_still_substitute():
    assert expand("echo \"$A\" '$A'", {"A": "1"}, raw_quotes=True) == "echo \"1\" '$A'"
