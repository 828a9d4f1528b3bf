"""Reading the files a city edits: libyaml's parser (fast) reads the same data and refuses the same duplicate keys
as PyYAML's pure-Python one, whose messages explain a failure."""

from __future__ import annotations

import pytest
import yaml

from chuishao import resources, yamlfile
from chuishao.errors import ChuishaoError

pytestmark = pytest.mark.skipif(yamlfile._FastLoader is yamlfile._UniqueKeyLoader,
                                reason="PyYAML is built without libyaml here: only the pure-Python parser")
BUNDLED = [resources.default_taxonomy_path(), resources.default_gazetteer_path(), resources.default_urgency_path()]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_both_parsers_read_the_bundled_files_alike(path):
    text = path.read_text(encoding="utf-8")
    fast = yaml.load(text, Loader=yamlfile._FastLoader)
    assert fast == yaml.load(text, Loader=yamlfile._UniqueKeyLoader) and fast


def test_the_fast_parser_itself_refuses_a_duplicate_key():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
        yaml.load("a: 1\nb: {c: 2}\na: 3\n", Loader=yamlfile._FastLoader)
    merged = "base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n"  # an override of a merged key is no duplicate
    assert yaml.load(merged, Loader=yamlfile._FastLoader)["item"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(("text", "expected"), [
    # PyYAML's words (libyaml's: "did not find expected ',' or ']'", "found a tab character ...")
    ("a: [1, 2\n", "at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
    ("a: 1\n\tb: 2\n", "at line 2, column 1: found character '\\t' that cannot start any token"),
    ("a: 1\na: 2\n", "duplicate key 'a' (first given at line 1)"),
])
def test_a_failure_is_explained_in_pure_python_words(tmp_path, text, expected):
    class Bad(ChuishaoError):
        pass

    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Bad, match=r"f\.yaml: ") as info:
        yamlfile.read_yaml(path, Bad, "test")
    assert expected in str(info.value) and "\n" not in str(info.value)
