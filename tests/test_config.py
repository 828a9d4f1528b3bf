"""The config as the whole recipe: configs/default.yaml, --KEY VALUE overrides, checks, path variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, REPO

from chuishao.config import ChuishaoConfig, render_config
from chuishao.errors import DataError

DEFAULT_YAML = REPO / "configs" / "default.yaml"


def test_default_yaml_is_the_codes_defaults_written_by_the_code():
    loaded = ChuishaoConfig.load(DEFAULT_YAML)
    # every key but the data section is the code's default: changing one without the other fails here
    assert loaded.model_dump(exclude={"data"}) == ChuishaoConfig().model_dump(exclude={"data"})
    # and the file is exactly what `chuishao config show --config configs/default.yaml` writes (make config)
    assert DEFAULT_YAML.read_text(encoding="utf-8") == render_config(loaded)


def test_default_yaml_holds_the_bundled_models_data():
    data = ChuishaoConfig.load(DEFAULT_YAML).data
    assert data.train == ["${paths.shared}/whistle/train.jsonl"]
    assert data.corpus == "${paths.shared}/corpus.jsonl"
    assert data.exclude == ["${paths.shared}/whistle/test.jsonl"]
    assert data.extra_labels == ["data/labels/extra-rare.csv", "data/labels/extra-corpus.csv"]
    assert data.extra_data == [f"data/authored/w{n}.jsonl" for n in ("02", "03", "07", "12", "14")]
    for path in (*data.extra_labels, *data.extra_data):  # the files kept in the repository are there
        assert (REPO / path).is_file(), path


def test_a_written_config_reads_back_equal():
    cfg = ChuishaoConfig.load(None, {"features.max_features": "null", "classifier.class_weight": "null",
                                     "data.train": "a.jsonl,b c.jsonl", "data.title_field": "", "seed": "7"})
    again = ChuishaoConfig.model_validate(yaml.safe_load(render_config(cfg)))
    assert again == cfg


def test_overrides_are_typed_by_the_key():
    cfg = ChuishaoConfig.load(None, {
        "classifier.C": "1", "features.char_ngrams": "1,4", "features.word_ngrams": "[1, 2]", "seed": "3",
        "features.max_features": "null", "data.exclude": "a.jsonl", "data.extra_data": ["x.jsonl,y.jsonl", "z.jsonl"],
        "text.segmenter": "jieba", "classifier.class_weight": "None", "paths.shared": "/data",
        "data.corpus": "null", "text.min_han_ratio": ".5", "transformer.bf16": "auto",
    })
    assert cfg.classifier.C == 1.0 and isinstance(cfg.classifier.C, float)
    assert cfg.features.char_ngrams == (1, 4) and cfg.features.word_ngrams == (1, 2)
    assert cfg.seed == 3 and isinstance(cfg.seed, int)
    assert cfg.features.max_features is None and cfg.classifier.class_weight is None and cfg.data.corpus is None
    assert cfg.data.exclude == ["a.jsonl"] and cfg.data.extra_data == ["x.jsonl", "y.jsonl", "z.jsonl"]
    assert cfg.text.segmenter == "jieba" and cfg.text.min_han_ratio == 0.5 and cfg.paths == {"shared": "/data"}
    assert cfg.transformer.bf16 == "auto" and ChuishaoConfig.load(None, {"transformer.bf16": "yes"}).transformer.bf16 is True
    assert cfg.features.min_df == 2  # untouched keys keep their defaults


def test_overrides_apply_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features: {min_df: 1, char_ngrams: [2, 3]}\nclassifier: {C: 2}\n", encoding="utf-8")
    cfg = ChuishaoConfig.load(path, {"classifier.C": "0.25"})
    assert cfg.classifier.C == 0.25 and cfg.features.min_df == 1 and cfg.features.char_ngrams == (2, 3)
    assert ChuishaoConfig.load(path, {"features.char-ngrams": "1,2"}).features.char_ngrams == (1, 2)  # - is _


@pytest.mark.parametrize(("key", "near"), [
    ("classifier.c", "classifier.C"), ("features.char_ngram", "features.char_ngrams"),
    ("data.exlude", "data.exclude"), ("paths.shard", "paths.shared"), ("sed", "seed"),
])
def test_an_unknown_key_is_one_line_with_near_matches(key, near):
    with pytest.raises(DataError) as err:
        ChuishaoConfig.load(None, {key: "1"})
    message = str(err.value)
    assert "\n" not in message and f"unknown config key {key}" in message and f"did you mean {near}" in message


def test_a_section_is_not_a_key():
    with pytest.raises(DataError, match=r"classifier is a section: give classifier.KEY"):
        ChuishaoConfig.load(None, {"classifier": "1"})


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("text.segmenter", "pkuseg", "text.segmenter: Input should be 'auto', 'rjieba' or 'jieba' (got 'pkuseg')"),
    ("classifier.class_weight", "equal", "classifier.class_weight: Input should be 'balanced' (got 'equal')"),
    ("features.char_ngrams", "3,1", "features.char_ngrams: needs 1 <= lo <= hi <= 10, got 3,1"),
    ("features.char_ngrams", "0,2", "features.char_ngrams: needs 1 <= lo <= hi <= 10, got 0,2"),
    ("features.word_ngrams", "1,11", "features.word_ngrams: needs 1 <= lo <= hi <= 10, got 1,11"),
    ("features.char_ngrams", "1,2,3", "features.char_ngrams: Tuple should have at most 2 items"),
    ("features.char_ngrams", "1,x", "features.char_ngrams[1]: Input should be a valid integer"),
    ("features.min_df", "0", "features.min_df: Input should be greater than or equal to 1"),
    ("features.min_df", "0.5", "features.min_df: Input should be a valid integer"),
    ("features.max_df", "0", "features.max_df: Input should be greater than 0"),
    ("features.max_df", "1.5", "features.max_df: Input should be less than or equal to 1"),
    ("features.max_features", "0", "features.max_features: Input should be greater than or equal to 1"),
    ("classifier.C", "abc", "classifier.C: Input should be a valid number"),
    ("seed", "x", "seed: Input should be a valid integer"),
    ("text.segmenter", "null", "text.segmenter: Input should be 'auto', 'rjieba' or 'jieba' (got 'null')"),
    ("transformer.bf16", "sometimes", "transformer.bf16: should be true, false or auto (got 'sometimes')"),
])
def test_a_bad_value_is_one_line_naming_the_key(key, value, expected):
    with pytest.raises(DataError) as err:
        ChuishaoConfig.load(None, {key: value})
    message = str(err.value)
    assert "\n" not in message and expected in message and f"from --{key}" in message and "http" not in message


def test_a_bad_value_in_a_file_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("text: {segmenter: thulac}\nfeatures: {char_ngrams: [4, 2], max_df: 0}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        ChuishaoConfig.load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"config {path}: ")
    for key in ("text.segmenter:", "features.char_ngrams:", "features.max_df:"):
        assert key in message
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(DataError, match="not a mapping"):
        ChuishaoConfig.load(path)


def test_the_data_section_resolves_path_variables():
    cfg = ChuishaoConfig.load(DEFAULT_YAML, {"paths.shared": "/srv/shared"})
    data = cfg.resolved_data()
    assert data.train == ["/srv/shared/whistle/train.jsonl"] and data.corpus == "/srv/shared/corpus.jsonl"
    assert data.exclude == ["/srv/shared/whistle/test.jsonl"]
    assert data.extra_labels == ["data/labels/extra-rare.csv", "data/labels/extra-corpus.csv"]  # no variable: as is
    assert cfg.data.train == ["${paths.shared}/whistle/train.jsonl"]  # the recipe keeps the variable
    assert ChuishaoConfig.load(DEFAULT_YAML).resolved_data().train == ["../shared/data/whistle/train.jsonl"]


def test_the_encoders_extra_labels_default_to_the_data_sections():
    cfg = ChuishaoConfig.load(DEFAULT_YAML, {"paths.shared": "/srv/shared"})
    assert cfg.transformer.extra_labels is None
    assert cfg.resolved_encoder_labels() == ["data/labels/extra-rare.csv", "data/labels/extra-corpus.csv"]
    own = ChuishaoConfig.load(DEFAULT_YAML, {"paths.shared": "/srv/shared",
                                             "transformer.extra_labels": "${paths.shared}/rare.csv,b.csv"})
    assert own.resolved_encoder_labels() == ["/srv/shared/rare.csv", "b.csv"]
    assert own.resolved_data().extra_labels == ["data/labels/extra-rare.csv", "data/labels/extra-corpus.csv"]
    none = ChuishaoConfig.load(DEFAULT_YAML, {"transformer.extra_labels": "[]"})
    assert none.resolved_encoder_labels() == []
    with pytest.raises(DataError, match=r"transformer.extra_labels\[0\]: unknown variable"):
        ChuishaoConfig.load(None, {"transformer.extra_labels": "${paths.x}/a.csv"}).resolved_encoder_labels()


def test_an_unknown_or_unset_path_variable_is_an_error_naming_the_key():
    cfg = ChuishaoConfig.load(None, {"data.exclude": "a.jsonl,${paths.held}/test.jsonl"})
    with pytest.raises(DataError, match=r"data.exclude\[1\]: unknown variable \$\{paths.held\} \(defined: \$\{paths.shared\}\)"):
        cfg.resolved_data()
    portable = ChuishaoConfig.load(DEFAULT_YAML).portable()  # as a saved model keeps it
    assert portable.paths == {"shared": None} and portable.data.train == ["${paths.shared}/whistle/train.jsonl"]
    with pytest.raises(DataError, match=r"data.train\[0\]: \$\{paths.shared\} is not set; give --paths.shared DIR"):
        portable.resolved_data()


def test_a_file_defines_its_own_path_variables(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("paths: {fixtures: data/fixtures}\ndata: {train: ['${paths.fixtures}/labelled-mini.jsonl']}\n",
                    encoding="utf-8")
    assert ChuishaoConfig.load(path).resolved_data().train == ["data/fixtures/labelled-mini.jsonl"]
    moved = ChuishaoConfig.load(path, {"paths.fixtures": str(FIXTURES)})
    assert moved.resolved_data().train == [f"{FIXTURES}/labelled-mini.jsonl"]
    with pytest.raises(DataError, match=r"unknown config key paths\.shared"):  # the file's paths replace the default's
        ChuishaoConfig.load(path, {"paths.shared": "/x"})


def test_the_training_request_comes_from_the_data_section():
    from chuishao.training.train import TrainRequest

    cfg = ChuishaoConfig.load(DEFAULT_YAML, {"paths.shared": "/srv/s", "data.taxonomy": "none",
                                             "data.title_field": "", "data.label_field": "topic"})
    req = TrainRequest.from_config(cfg)
    assert req.data == [Path("/srv/s/whistle/train.jsonl")] and req.corpus == Path("/srv/s/corpus.jsonl")
    assert req.exclude == [Path("/srv/s/whistle/test.jsonl")] and len(req.extra_data) == 5
    assert req.extra_labels == [Path("data/labels/extra-rare.csv"), Path("data/labels/extra-corpus.csv")]
    assert req.taxonomy is None and req.label_field == "topic" and req.fields.title is None
    assert req.config.paths == {"shared": None} and req.config.data.train == ["${paths.shared}/whistle/train.jsonl"]
    assert TrainRequest.from_config(ChuishaoConfig.load(DEFAULT_YAML)).taxonomy.name == "whistle-15"
    with pytest.raises(DataError, match="no training data"):
        TrainRequest.from_config(ChuishaoConfig())
