""".dockerignore matching: the cases of moby/patternmatcher's and ignorefile's own test tables."""

import pytest

from engine.build.dockerignore import Matcher, clean, keep_build_files, read_patterns
from engine.errors import InvalidParameter

# (pattern, path, matched exactly, matched with parent matching) from patternmatcher_test.go TestMatches:
# "exact" passes both, "inexact" only with parent dirs, "fail" neither.
EXACT, INEXACT, FAIL = "exact", "inexact", "fail"
MATCHES = [
    ("**", "file", EXACT), ("**", "file/", EXACT), ("**/", "file", EXACT), ("**/", "file/", EXACT),
    ("**", "/", EXACT), ("**/", "/", EXACT), ("**", "dir/file", EXACT), ("**/", "dir/file", EXACT),
    ("**", "dir/file/", EXACT), ("**/", "dir/file/", EXACT), ("**/**", "dir/file", EXACT),
    ("**/**", "dir/file/", EXACT), ("dir/**", "dir/file", EXACT), ("dir/**", "dir/file/", EXACT),
    ("dir/**", "dir/dir2/file", EXACT), ("dir/**", "dir/dir2/file/", EXACT), ("**/dir", "dir", EXACT),
    ("**/dir", "dir/file", INEXACT), ("**/dir2/*", "dir/dir2/file", EXACT),
    ("**/dir2/*", "dir/dir2/file/", INEXACT), ("**/dir2/**", "dir/dir2/dir3/file", EXACT),
    ("**/dir2/**", "dir/dir2/dir3/file/", EXACT), ("**file", "file", EXACT), ("**file", "dir/file", EXACT),
    ("**/file", "dir/file", EXACT), ("**file", "dir/dir/file", EXACT), ("**/file", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file", EXACT), ("**/file*", "dir/dir/file.txt", EXACT),
    ("**/file*txt", "dir/dir/file.txt", EXACT), ("**/file*.txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt*", "dir/dir/file.txt", EXACT), ("**/**/*.txt", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt2", "dir/dir/file.txt", FAIL), ("**/*.txt", "file.txt", EXACT),
    ("**/**/*.txt", "file.txt", EXACT), ("a**/*.txt", "a/file.txt", EXACT), ("a**/*.txt", "a/dir/file.txt", EXACT),
    ("a**/*.txt", "a/dir/dir/file.txt", EXACT), ("a/*.txt", "a/dir/file.txt", FAIL),
    ("a/*.txt", "a/file.txt", EXACT), ("a/*.txt**", "a/file.txt", EXACT), ("a[b-d]e", "ae", FAIL),
    ("a[b-d]e", "ace", EXACT), ("a[b-d]e", "aae", FAIL), ("a[^b-d]e", "aze", EXACT), (".*", ".foo", EXACT),
    (".*", "foo", FAIL), ("abc.def", "abcdef", FAIL), ("abc.def", "abc.def", EXACT), ("abc.def", "abcZdef", FAIL),
    ("abc?def", "abcZdef", EXACT), ("abc?def", "abcdef", FAIL), ("**/foo/bar", "foo/bar", EXACT),
    ("**/foo/bar", "dir/foo/bar", EXACT), ("**/foo/bar", "dir/dir2/foo/bar", EXACT), ("abc/**", "abc", FAIL),
    ("abc/**", "abc/def", EXACT), ("abc/**", "abc/def/ghi", EXACT), ("**/.foo", ".foo", EXACT),
    ("**/.foo", "bar.foo", FAIL), ("a(b)c/def", "a(b)c/def", EXACT), ("a(b)c/def", "a(b)c/xyz", FAIL),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", EXACT),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("a\\\\", "a\\", EXACT), ("a\\*b", "a*b", EXACT),
]

MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
]

# Go's filepath.Match tests as patternmatcher runs them (TestMatch): (pattern, path, matched or "error").
FILEPATH_MATCH = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", True), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False), ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True),
    ("[x\\-]", "x", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False), ("[\\-x]", "x", True),
    ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("[]a]", "]", "error"), ("[-]", "-", "error"),
    ("[x-]", "x", "error"), ("[x-]", "-", "error"), ("[x-]", "z", "error"), ("[-x]", "x", "error"),
    ("[-x]", "-", "error"), ("[-x]", "a", "error"), ("\\", "a", "error"), ("[a-b-c]", "a", "error"),
    ("[", "a", "error"), ("[^", "a", "error"), ("[^bc", "a", "error"), ("a[", "a", "error"), ("a[", "ab", "error"),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize("pattern,path,kind", MATCHES)
def test_patternmatcher_table_matches_like_moby(pattern, path, kind):
    assert Matcher([pattern]).matches(path) is (kind != FAIL)


@pytest.mark.parametrize("patterns,path,expected", MULTI)
def test_exceptions_and_later_patterns_decide_like_moby(patterns, path, expected):
    assert Matcher(patterns).matches(path) is expected


@pytest.mark.parametrize("pattern,path,expected", FILEPATH_MATCH)
def test_go_filepath_match_cases_and_bad_patterns(pattern, path, expected):
    if expected == "error":
        with pytest.raises(InvalidParameter, match="syntax error in pattern"):
            Matcher([pattern])
    else:
        assert Matcher([pattern]).matches(path) is expected


def test_simple_and_exception_patterns_from_moby():
    assert Matcher(["*"]).matches("fileutils.go")
    assert Matcher(["*.go"]).matches("fileutils.go")
    assert Matcher(["!fileutils.go", "*.go"]).matches("fileutils.go")  # a later pattern wins
    assert not Matcher(["*.go", "!fileutils.go"]).matches("fileutils.go")
    for folder in ("docs", "docs/", "docs/*"):
        assert not Matcher([folder, "!docs/README.md"]).matches("docs/README.md")
        assert Matcher([folder, "!docs/README.md"]).matches("docs/other.md")
    assert not Matcher(["*.go"]).matches(".")
    assert not Matcher([]).matches("/any/path/there")


def test_a_lone_exclamation_mark_is_an_illegal_pattern():
    with pytest.raises(InvalidParameter, match='illegal exclusion pattern: "!"'):
        Matcher(["!"])


def test_surrounding_spaces_and_empty_patterns_are_dropped():
    m = Matcher(["docs", "  !docs/README.md  ", ""])
    assert len(m.patterns) == 2 and m.has_exceptions
    assert not m.matches("docs/README.md")


def test_read_patterns_like_ignorefile_read_all():
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert read_patterns(content) == ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]


def test_read_patterns_cleans_paths_and_strips_a_byte_order_mark():
    data = "\ufeff./a/../b//c/\n  # indented is not a comment\r\nx/./y\n/\n".encode()
    assert read_patterns(data) == ["b/c", "# indented is not a comment", "x/y", "/"]


def test_clean_behaves_like_go_filepath_clean():
    cases = {"": ".", ".": ".", "a/": "a", "//a//b/": "/a/b", "a/../..": "..", "/..": "/", "./x": "x",
             "a/b/../../c": "c"}
    for given, expected in cases.items():
        assert clean(given) == expected, given


def test_a_directory_match_excludes_everything_below_it():
    m = Matcher(read_patterns("node_modules\n*.log\n"))
    assert m.excluded("node_modules", is_dir=True)
    assert m.excluded("node_modules/pkg/index.js")
    assert m.excluded("debug.log")
    assert not m.excluded("src/debug.log")  # "*" does not cross "/"
    assert not m.excluded("src", is_dir=True)


def test_a_directory_with_a_possible_exception_inside_is_walked():
    m = Matcher(read_patterns("docs\n!docs/README.md\n"))
    assert m.matches("docs")
    assert not m.excluded("docs", is_dir=True)      # walk in: README.md comes back
    assert not m.excluded("docs/README.md")
    assert m.excluded("docs/other.md")
    m = Matcher(read_patterns("docs\n!src/keep\n"))
    assert m.excluded("docs", is_dir=True)          # the exception cannot match below docs
    wild = Matcher(read_patterns("vendor\n!**/*.go\n"))
    assert not wild.excluded("vendor", is_dir=True)  # wildcards: walk in, as Docker does
    assert wild.excluded("vendor/a.c") and not wild.excluded("vendor/x/a.go")


def test_the_dockerfile_and_dockerignore_are_kept_in_the_context():
    patterns = keep_build_files(read_patterns("*\n"), "Dockerfile")
    m = Matcher(patterns)
    assert not m.excluded("Dockerfile") and not m.excluded(".dockerignore")
    assert m.excluded("secret.txt")
    assert keep_build_files(["*.txt"], "Dockerfile") == ["*.txt"]
