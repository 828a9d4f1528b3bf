import json
import shutil

import numpy as np
import pytest

from chuishao.errors import DataError, ModelLoadError
from chuishao.models.answer import RoutingAnswer
from chuishao.models.persistence import load_model, read_manifest, save_model
from chuishao.taxonomy import Taxonomy


def test_route_gives_a_complete_answer(tiny_model):
    [a] = tiny_model.route(["晚上楼下广场舞音响太吵了，严重扰民"], ids=["x1"])
    assert a.error is None and a.id == "x1"
    assert a.topic == "W05" and a.topic_name == "噪声扰民" and a.area == "综合执法"
    assert a.sub in Taxonomy.load().subs_of("W05")
    assert a.departments.lead == "城管执法局" and "生态环境局" in a.departments.assist
    assert len(a.top) == 3 and a.top[0].topic == "W05"
    assert a.top[0].score >= a.top[1].score >= a.top[2].score
    assert a.confidence == a.top[0].score
    # four decimals that print as four decimals (not float32's 0.9976000189781189)
    assert all(len(repr(t.score).split(".")[1]) <= 4 for t in a.top)
    assert a.evidence and all(term in "晚上楼下广场舞音响太吵了，严重扰民" for term in a.evidence)
    assert a.model_version == "tiny-test"


def test_sub_problem_always_belongs_to_the_topic(tiny_model, mini_data):
    tax = Taxonomy.load()
    for a in tiny_model.route(mini_data.texts, titles=mini_data.titles):
        if a.topic == "OTHER":
            assert a.sub is None
        else:
            assert a.sub in tax.subs_of(a.topic)


def test_probabilities_are_a_distribution(tiny_model, mini_data):
    proba = tiny_model.predict_proba(mini_data.texts, titles=mini_data.titles)
    assert proba.shape == (len(mini_data.texts), len(tiny_model.classes_))
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba >= 0).all()


def test_route_dicts_are_exactly_the_validated_answers(tiny_model, mini_data):
    texts = [*mini_data.texts[:10], "", "English only here", None, "违建" * 50_000]
    ids = [f"m{i}" for i in range(len(texts))]
    plain = tiny_model.route_dicts(texts, ids=ids)
    validated = [RoutingAnswer(**a).model_dump() for a in plain]
    assert plain == validated
    assert [list(a) for a in plain] == [list(v) for v in validated]  # field order too: it is the output's column order
    assert sum(a["error"] is not None for a in plain) == 4


def test_unsure_answers_are_flagged(tiny_model):
    # needs_review exactly when confidence is under the held-out threshold
    answers = tiny_model.route(["今天天气不错，小区门口有点事情想说一下", "楼下烧烤店油烟很大"])
    for a in answers:
        assert a.needs_review == (a.confidence < tiny_model.review_threshold_)


@pytest.mark.parametrize(
    "text,reason",
    [("", "empty"), ("   \n\t ", "empty"), ("This is an English complaint about noise", "not Chinese"),
     ("违建" * 50_000, "too long"), (None, "must be a string"), (123, "must be a string"),
     ("[微笑][强]", "only emoticons"), ("12345678 !!", "not Chinese")],
)
def test_bad_input_gets_an_error_not_an_exception(tiny_model, text, reason):
    answers = tiny_model.route(["楼下烧烤店油烟很大", text, "物业不管电梯"])
    assert [a.error is None for a in answers] == [True, False, True]
    assert reason in answers[1].error and answers[1].topic is None


def test_save_load_round_trip(tiny_model, tiny_model_dir, mini_data):
    loaded = load_model(tiny_model_dir)
    assert loaded.classes_ == tiny_model.classes_
    np.testing.assert_allclose(loaded.predict_proba(mini_data.texts, titles=mini_data.titles),
                               tiny_model.predict_proba(mini_data.texts, titles=mini_data.titles), atol=0.02)
    assert [a.model_dump(exclude={"confidence", "top", "model_version"}) for a in loaded.route(mini_data.texts)] == \
        [a.model_dump(exclude={"confidence", "top", "model_version"}) for a in tiny_model.route(mini_data.texts)]
    manifest = read_manifest(tiny_model_dir)
    assert manifest["labels"] == tiny_model.classes_
    assert manifest["taxonomy"]["version"] == "1.2"
    assert manifest["taxonomy"]["fingerprint"] == Taxonomy.load().fingerprint
    assert set(manifest["sub_labels"]) <= set(Taxonomy.load().sub_codes)
    assert manifest["config"]["features"]["char_ngrams"] == [1, 3]


def test_missing_and_corrupted_model_dirs(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nothing-here")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"manifest\.json is missing"):
        load_model(empty)
    for name in ("model.safetensors", "model.json"):
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(tiny_model_dir, broken)
        with (broken / name).open("r+b") as fh:
            fh.seek(200)
            fh.write(b"\x00garbage\x00")
        with pytest.raises(ModelLoadError, match=f"{name}: checksum mismatch, the file is corrupted"):
            load_model(broken)
        truncated = tmp_path / f"truncated-{name}"
        shutil.copytree(tiny_model_dir, truncated)
        (truncated / name).write_bytes((tiny_model_dir / name).read_bytes()[:100])
        with pytest.raises(ModelLoadError, match="corrupted"):
            load_model(truncated)
        missing = tmp_path / f"missing-{name}"
        shutil.copytree(tiny_model_dir, missing)
        (missing / name).unlink()
        with pytest.raises(ModelLoadError, match=f"{name} is missing"):
            load_model(missing)


def test_an_edited_taxonomy_reroutes_without_retraining_but_other_codes_are_refused(tiny_model_dir, tmp_path):
    import yaml

    from chuishao.resources import default_taxonomy_path

    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    topics = {t["code"]: t for area in raw["areas"] for t in area["topics"]}
    topics["W06"]["lead"] = "区生态环境分局"  # a city's own department name
    topics["W06"]["name"] = "油烟和扬尘"
    raw["version"] = "1.1-city"
    edited = tmp_path / "city.yaml"
    edited.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    before = load_model(tiny_model_dir).route(["楼下烧烤店油烟很大"])[0]
    after = load_model(tiny_model_dir, taxonomy=Taxonomy.load(edited)).route(["楼下烧烤店油烟很大"])[0]
    assert before.topic == after.topic == "W06"
    assert before.departments.lead != "区生态环境分局"
    assert after.departments.lead == "区生态环境分局" and after.topic_name == "油烟和扬尘"

    topics["W06"]["subs"] = topics["W06"]["subs"][:1]  # a sub-problem the model predicts is gone
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"W06b.*retrain"):
        load_model(tiny_model_dir, taxonomy=Taxonomy.load(fewer))


def test_saved_model_records_training_provenance(tiny_model, tmp_path):
    tiny_model.metadata["data_fingerprint"] = "abc123"
    out = save_model(tiny_model, tmp_path / "m")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["data_fingerprint"] == "abc123"
    assert sorted(manifest["files"]) == ["model.json", "model.safetensors"]
    assert all(len(checksum) == 64 for checksum in manifest["files"].values())
    assert not list(out.glob("*.tmp"))


def test_self_training_uses_unlabelled_messages(mini_data):
    from conftest import tiny_config

    from chuishao.models.classifier import ChuishaoClassifier

    cfg = tiny_config()
    cfg.classifier.self_training_weight = 0.3
    model = ChuishaoClassifier(cfg, Taxonomy.load())
    # the preprocessor is ready before fit
    extra = model.docs(["小区门口烧烤摊油烟很大", "晚上工地施工噪音太吵", "物业公司不修电梯"])
    model.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles, subs=mini_data.subs, weights=mini_data.weights,
              unlabelled=extra)
    assert model.training_summary_ == {"labelled": 34, "pseudo_labelled": 3}
    assert model.predict(["楼下烧烤店油烟很大"]) == ["W06"]


def test_saved_weights_are_small_and_faithful(tiny_model, tiny_model_dir, mini_data):
    loaded = load_model(tiny_model_dir)
    # half precision on disk: scores agree to ~1e-3, answers agree exactly on the fixture
    np.testing.assert_allclose(loaded.topic_model.weights, tiny_model.topic_model.weights, atol=2e-3)
    predicted = tiny_model.predict(mini_data.texts, titles=mini_data.titles)
    assert loaded.predict(mini_data.texts, titles=mini_data.titles) == predicted


def test_nul_and_control_characters_do_not_break_a_batch(tiny_model):
    answers = tiny_model.route(["楼下烧烤\x00店油烟很大", "物业\x01不管\x07电梯"], titles=["标题\x00", None])
    assert all(a.error is None for a in answers)
    assert answers[0].topic == "W06"


def test_review_threshold_is_set_on_the_data_files_rows_only(mini_data, tmp_path):
    """Extra id-label files (a whole corpus, mostly easy OTHER) train the model but do not
    calibrate it: the threshold is chosen on rows like the ones it will be judged on."""
    from conftest import FIXTURES, tiny_config

    from chuishao.training.train import TrainRequest, train

    corpus, extra = tmp_path / "corpus.jsonl", tmp_path / "extra.csv"
    with corpus.open("w", encoding="utf-8") as fh:
        for i in range(20):
            fh.write(json.dumps({"id": f"c{i}", "text": f"请问社保卡怎么补办，第{i}次咨询"}, ensure_ascii=False) + "\n")
    extra.write_text("id,label,sub\n" + "".join(f"c{i},OTHER,\n" for i in range(20)), encoding="utf-8")
    cfg = tiny_config()
    cfg.classifier.self_training_weight = 0
    model = train(TrainRequest(data=[FIXTURES / "labelled-mini.jsonl"], taxonomy=Taxonomy.load(), config=cfg,
                               corpus=corpus, extra_labels=[extra]))
    assert model.metadata["training_rows"] == len(mini_data) + 20
    assert model.heldout_["rows"] == len(mini_data)


def test_class_offsets_are_folded_into_the_saved_intercepts(mini_data):
    """The macro-F1 offsets live in the topic model's intercepts, so serving, batch and Spark
    apply them with no extra step; heldout_ records them."""
    from conftest import tiny_config

    from chuishao.models.classifier import ChuishaoClassifier

    fitted = {}
    for shrink in (0.0, 1.0):
        cfg = tiny_config()
        cfg.classifier.class_bias_shrink = shrink
        model = ChuishaoClassifier(cfg, Taxonomy.load())
        model.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles, subs=mini_data.subs, weights=mini_data.weights)
        fitted[shrink] = model
    assert fitted[0.0].heldout_["class_bias"] == {}
    offsets = fitted[1.0].heldout_["class_bias"]
    assert offsets  # the fixture has classes the first model under-predicts
    expected = np.array([offsets.get(c, 0.0) for c in fitted[1.0].classes_])
    np.testing.assert_allclose(fitted[1.0].topic_model.intercept - fitted[0.0].topic_model.intercept, expected, atol=1e-3)


def test_extra_data_trains_but_does_not_calibrate(mini_data, tmp_path):
    from conftest import FIXTURES, tiny_config

    from chuishao.training.train import TrainRequest, train

    authored = tmp_path / "authored.jsonl"
    rows = [{"id": f"a{i}", "text": t, "label": "W07", "sub": "W07b"}
            for i, t in enumerate(["楼道里贴满了开锁小广告", "电梯里被人贴了办证牛皮癣", "门缝里塞满小卡片"])]
    authored.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = tiny_config()
    cfg.classifier.self_training_weight = 0
    model = train(TrainRequest(data=[FIXTURES / "labelled-mini.jsonl"], taxonomy=Taxonomy.load(), config=cfg,
                               extra_data=[authored]))
    assert model.metadata["training_rows"] == len(mini_data) + 3
    assert model.heldout_["rows"] == len(mini_data)
    assert str(authored) in model.metadata["training_files"]

    authored.write_text(json.dumps({"id": "x", "text": "小广告", "label": "W99"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"authored\.jsonl: labels not in taxonomy .*W99"):
        train(TrainRequest(data=[FIXTURES / "labelled-mini.jsonl"], taxonomy=Taxonomy.load(), config=cfg,
                           extra_data=[authored]))
    for label in ("噪声扰民", "w05"):  # a city's export: names or lower-case codes, which import maps
        authored.write_text(json.dumps({"id": "x", "text": "小广告", "label": label}) + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"labels given as topic names or in lower case \({label}\).*chuishao import"):
            train(TrainRequest(data=[FIXTURES / "labelled-mini.jsonl"], taxonomy=Taxonomy.load(), config=cfg,
                               extra_data=[authored]))


def test_extra_label_ids_missing_from_the_corpus_are_an_error(tmp_path):
    """A label file made on another corpus must not lose its labels without a word."""
    from conftest import FIXTURES, tiny_config

    from chuishao.training.data import read_id_labels
    from chuishao.training.train import TrainRequest, train

    corpus, extra = tmp_path / "corpus.jsonl", tmp_path / "extra.csv"
    corpus.write_text(json.dumps({"id": "c1", "text": "请问社保卡怎么补办"}, ensure_ascii=False) + "\n"
                      + json.dumps({"id": "c2", "body": "请问"}) + "\n", encoding="utf-8")
    extra.write_text("id,label,sub\nc1,OTHER,\nzz9,W06,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"extra\.csv: 1 of its 2 ids have no usable text in .*corpus\.jsonl.*zz9"):
        train(TrainRequest(data=[FIXTURES / "labelled-mini.jsonl"], taxonomy=Taxonomy.load(), config=tiny_config(),
                           corpus=corpus, extra_labels=[extra]))
    extra.write_text("id,label,sub\nc1,OTHER,\nc2,W06,\n", encoding="utf-8")  # c2 has no text
    with pytest.raises(DataError, match=r"c2.*unusable corpus rows: .*line 2: no 'text' field"):
        read_id_labels(extra, corpus)
    extra.write_text("id,label,sub\nc1,OTHER,\n", encoding="utf-8")
    assert read_id_labels(extra, corpus).labels == ["OTHER"]
    assert read_id_labels(extra, corpus, exclude_ids={"c1"}).ids == []  # held out on purpose: no error


def test_a_message_is_chinese_if_its_text_or_its_title_is(tiny_model):
    url = "https://example.com/complaints/view?id=123456"
    ok, title_only, english_body, neither, too_long = tiny_model.route(
        ["楼下烧烤店油烟很大", "", "Only English words here", "Only English words here", "楼下很吵" * 5000],
        titles=[url, "楼下烧烤店油烟很大", "楼下烧烤店油烟很大", url, "路灯"])
    assert ok.error is None and title_only.error is None and english_body.error is None
    assert "not Chinese" in neither.error
    assert "title and text together" in too_long.error


def _mini_rows() -> list[dict]:
    from conftest import FIXTURES

    return [json.loads(line) for line in (FIXTURES / "labelled-mini.jsonl").read_text(encoding="utf-8").splitlines()]


def _write(path, rows) -> object:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_held_out_ids_never_train_even_in_the_data_files(tmp_path):
    """--exclude test.jsonl with a train file that overlaps it: the overlap is dropped and counted."""
    from conftest import tiny_config

    from chuishao.training.train import TrainRequest, train

    rows = _mini_rows()
    assert all(r.get("id") for r in rows)
    data, held = _write(tmp_path / "train.jsonl", rows), _write(tmp_path / "test.jsonl", rows[:4])
    model = train(TrainRequest(data=[data], taxonomy=Taxonomy.load(), config=tiny_config(), exclude=[held]))
    assert model.metadata["training_rows"] == len(rows) - 4
    assert model.metadata["dropped_rows"] == {"held_out": 4, "repeated": 0}


def test_a_message_given_twice_trains_once_and_conflicting_labels_are_an_error(tmp_path):
    from conftest import tiny_config

    from chuishao.training.train import TrainRequest, train

    rows = _mini_rows()
    again = _write(tmp_path / "again.jsonl", rows[:3])
    model = train(TrainRequest(data=[_write(tmp_path / "a.jsonl", rows), again], taxonomy=Taxonomy.load(), config=tiny_config()))
    assert model.metadata["training_rows"] == len(rows) and model.metadata["dropped_rows"]["repeated"] == 3
    flipped = [{**r, "label": "OTHER" if r["label"] != "OTHER" else "W05", "sub": None} for r in rows[:2]]
    with pytest.raises(DataError, match="2 message ids come with two different labels"):
        train(TrainRequest(data=[_write(tmp_path / "a.jsonl", rows), _write(tmp_path / "b.jsonl", flipped)],
                           taxonomy=Taxonomy.load(), config=tiny_config()))
    # rows without ids are different messages, whatever file they come from
    no_ids = [{k: v for k, v in r.items() if k != "id"} for r in rows]
    model = train(TrainRequest(data=[_write(tmp_path / "x.jsonl", no_ids), _write(tmp_path / "y.jsonl", no_ids)],
                               taxonomy=Taxonomy.load(), config=tiny_config()))
    assert model.metadata["training_rows"] == 2 * len(rows)


def test_label_files_must_be_utf8_and_give_each_id_one_label(tmp_path):
    from chuishao.training.data import read_id_labels

    corpus = _write(tmp_path / "corpus.jsonl", [{"id": "c1", "text": "请问社保卡怎么补办"}])
    extra = tmp_path / "extra.csv"
    extra.write_bytes("id,label,sub\nc1,其他,\n".encode("gbk"))
    with pytest.raises(DataError, match=r"extra\.csv: not UTF-8"):
        read_id_labels(extra, corpus)
    extra.write_text("id,label,sub\nc1,OTHER,\nc1,W06,W06a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"extra\.csv: 1 ids have two different labels \(e\.g\. c1\)"):
        read_id_labels(extra, corpus)
    extra.write_text("id,label,sub\nc1,OTHER,\nc1,OTHER,\n", encoding="utf-8")  # the same twice: fine
    assert read_id_labels(extra, corpus).ids == ["c1"]


def test_hand_edited_or_foreign_manifests_are_clear_errors(tiny_model_dir, tmp_path):
    def copy_with(name: str, edit) -> object:
        target = tmp_path / name
        shutil.copytree(tiny_model_dir, target)
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        (target / "manifest.json").write_text(json.dumps(edit(manifest)), encoding="utf-8")
        return target

    with pytest.raises(ModelLoadError, match="JSON object"):
        load_model(copy_with("list", lambda m: []))
    with pytest.raises(ModelLoadError, match="lacks version"):
        load_model(copy_with("no-version", lambda m: {k: v for k, v in m.items() if k != "version"}))
    with pytest.raises(ModelLoadError, match=r"lacks the checksums of model\.json and model\.safetensors"):
        load_model(copy_with("no-sum", lambda m: {k: v for k, v in m.items() if k != "files"}))
    with pytest.raises(ModelLoadError, match="lacks the checksums"):  # one file's checksum left out
        load_model(copy_with("one-sum", lambda m: {**m, "files": {"model.json": m["files"]["model.json"]}}))
    with pytest.raises(ModelLoadError, match="unknown model format"):
        load_model(copy_with("format", lambda m: {**m, "format": "chuishao-model/99"}))


def test_a_model_saved_by_another_release_is_refused_when_loaded_not_when_used(tiny_model_dir, tmp_path):
    import hashlib

    directory = tmp_path / "other-release"
    shutil.copytree(tiny_model_dir, directory)
    state = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    del state["temperature"]  # as if another release had not had it; its checksums are right
    (directory / "model.json").write_text(json.dumps(state), encoding="utf-8")
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["model.json"] = hashlib.sha256((directory / "model.json").read_bytes()).hexdigest()
    manifest["chuishao"] = "0.0.1"
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"made by chuishao 0\.0\.1.*lacks temperature.*retrain"):
        load_model(directory)


def test_a_hand_edited_taxonomy_inside_the_model_is_refused(tiny_model_dir, tmp_path):
    import hashlib

    directory = tmp_path / "edited"
    shutil.copytree(tiny_model_dir, directory)
    state = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    state["taxonomy"]["content"]["areas"][0]["topics"][0]["lead"] = "某部门"  # fingerprint left as it was
    (directory / "model.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["model.json"] = hashlib.sha256((directory / "model.json").read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"not the .* saved with it"):
        load_model(directory)


def test_a_model_that_differs_in_weights_data_taxonomy_or_recipe_gets_another_version(tiny_model, tmp_path):
    import copy

    from chuishao.models.persistence import _version

    def variant(**change) -> object:
        m = copy.copy(tiny_model)
        m.metadata = {"data_fingerprint": "d1"}
        for key, value in change.items():
            setattr(m, key, value)
        return m

    base = variant()
    city = Taxonomy.load()
    city = city.model_copy(update={"version": "1.1-city"})
    recipe = tiny_model.config.model_copy(deep=True)
    recipe.classifier.C = 2.0
    other_weights = variant()
    other_weights.topic_model = copy.deepcopy(tiny_model.topic_model)
    other_weights.topic_model.intercept = other_weights.topic_model.intercept + 0.01  # e.g. other self-training data
    versions = {_version(m, "2026-12-02T00:00:00Z")
                for m in (base, variant(taxonomy=city), variant(config=recipe), other_weights)}
    assert len(versions) == 4
    assert all(v.startswith("chuishao-whistle-15-2026-12-02-") for v in versions)
    assert _version(variant(), "2026-12-02T00:00:00Z") == _version(base, "2026-12-02T00:00:00Z")  # reproducible


def test_a_failed_save_leaves_the_previous_model_usable(tiny_model, tmp_path, monkeypatch):
    import copy

    target = save_model(copy.copy(tiny_model), tmp_path / "m")
    before = {name: (target / name).read_bytes() for name in ("model.safetensors", "model.json", "manifest.json")}

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_bytes", disk_full)  # model.safetensors is written by then
    newer = copy.copy(tiny_model)
    newer.metadata = {"version": "newer", "data_fingerprint": "other"}  # other bytes than the saved one
    with pytest.raises(OSError, match="No space"):
        save_model(newer, target)
    monkeypatch.undo()
    assert {name: (target / name).read_bytes() for name in before} == before
    assert load_model(target).classes_ == tiny_model.classes_
    assert not list(target.glob("*.tmp"))


def test_evidence_terms_lie_inside_one_word_of_the_message(tiny_model, mini_data):
    # character n-grams fill in when few words point the same way; one across two words
    # ("里暖" of 家里|暖气, "的的") means nothing to an operator
    texts = [*mini_data.texts, "家里暖气漏水了，楼下的的确确都被淹了", "小区门口的烧烤摊油烟呛人",
             "我是前年在县城小区买的房子，楼板断裂了不知道该怎么办", "购买的商品房三年就漏水", "我家住这里，关心交通的公交线路"]
    docs = tiny_model.docs(texts)
    answers = tiny_model.route(texts)
    assert sum(len(a.evidence) for a in answers) > len(texts)
    for doc, answer in zip(docs, answers, strict=True):
        assert all(any(term in word for word in doc.tokens) for term in answer.evidence), (answer.evidence, doc.tokens)


def test_the_same_weights_saved_twice_give_byte_identical_data_files(tiny_model, tiny_model_dir, tmp_path):
    first, second = save_model(tiny_model, tmp_path / "first"), save_model(tiny_model, tmp_path / "second")
    reloaded = save_model(load_model(tiny_model_dir), tmp_path / "reloaded")  # loaded, then saved
    for name in ("model.json", "model.safetensors"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
        assert (reloaded / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert read_manifest(reloaded)["version"] == read_manifest(tiny_model_dir)["version"]
    assert read_manifest(first)["files"] == read_manifest(second)["files"]


def test_loading_never_unpickles(tiny_model_dir, monkeypatch):
    import pickle

    import joblib

    def refuse(*args, **kwargs):
        raise AssertionError("a model load unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    for directory in (None, tiny_model_dir):  # the bundled model, the tiny one
        model = load_model(directory)
        [answer] = model.route(["楼下烧烤店油烟很大，呛得人没法开窗"], ids=["p1"])
        assert answer.error is None and answer.topic == "W06"


def test_old_pickled_models_are_refused_with_how_to_convert(tiny_model_dir, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.joblib").write_bytes(b"not read")
    (old / "manifest.json").write_text(json.dumps({"format": "whistle-model/1", "version": "v"}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"pickle \(model\.joblib\).*chuishao model convert .*only convert models you trust"):
        load_model(old)
    (old / "model.joblib").unlink()
    with pytest.raises(ModelLoadError, match=r"old pickle format whistle-model/1.*chuishao model convert"):
        load_model(old)


def test_in_memory_copies_travel_as_the_saved_data(tiny_model, tiny_model_dir):
    import pickle

    loaded = load_model(tiny_model_dir)
    clone = pickle.loads(pickle.dumps(loaded))  # as Spark broadcasts the model
    assert clone.version == loaded.version
    assert clone.route_dicts(["楼下烧烤店油烟很大"]) == loaded.route_dicts(["楼下烧烤店油烟很大"])


def test_answer_dict_is_the_routing_answers_shape():
    from chuishao.models.answer import answer_dict, error_answer

    assert answer_dict() == RoutingAnswer().model_dump()
    assert list(answer_dict()) == list(RoutingAnswer.model_fields)
    full = {"id": "a", "topic": "W05", "topic_name": "噪声扰民", "area": "综合执法", "sub": "W05a", "sub_name": "x",
            "confidence": 0.9, "needs_review": False, "top": [{"topic": "W05", "topic_name": "噪声扰民", "score": 0.9}],
            "departments": {"lead": "城管执法局", "assist": ["生态环境局"]}, "evidence": ["噪音"], "model_version": "v",
            "error": None, "jurisdiction": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "street": "文新街道",
                                            "community": None, "place": "文三路", "office": "文新街道办事处",
                                            "matched": ["西湖区", "文新街道"], "confidence": 1.0, "candidates": 1,
                                            "unlisted": []}}
    assert answer_dict(**full) == RoutingAnswer(**full).model_dump()
    from chuishao.models.answer import Jurisdiction, empty_jurisdiction

    assert empty_jurisdiction() == Jurisdiction().model_dump()
    assert error_answer("m1", "empty text", "v") == RoutingAnswer(id="m1", error="empty text", model_version="v").model_dump()



def _pickle_as_before(model, path) -> None:
    """``model`` pickled as format 1 wrote it: each object's old ``__getstate__`` (half-precision
    sparse weights), written as ``model.joblib`` (joblib reads plain pickles)."""
    import copyreg
    import pickle

    import scipy.sparse as sp

    from chuishao.models.classifier import ChuishaoClassifier
    from chuishao.models.linear import LinearScorer, SparseScorer
    from chuishao.pipeline.features import NgramTfidf
    from chuishao.pipeline.segment import Segmenter

    def packed(weights):
        csr = sp.csr_matrix(weights)
        return {"shape": csr.shape, "data": csr.data.astype(np.float16), "indices": csr.indices, "indptr": csr.indptr}

    states = {
        ChuishaoClassifier: lambda o: {k: v for k, v in vars(o).items() if k != "_displayable"},
        LinearScorer: lambda o: {"classes": o.classes, "weights": packed(o.weights), "intercept": o.intercept},
        SparseScorer: lambda o: {"classes": o.classes, "weights": packed(o.weights), "intercept": o.intercept},
        NgramTfidf: lambda o: {k: v for k, v in vars(o).items() if k not in ("_index", "_unigrams")},
        Segmenter: lambda o: {"lexicon": o.lexicon, "engine": o.engine},
    }

    class FormatOne(pickle.Pickler):
        def reducer_override(self, obj):
            if type(obj) in states:
                return copyreg.__newobj__, (type(obj),), states[type(obj)](obj)
            return NotImplemented

    with path.open("wb") as fh:
        FormatOne(fh, protocol=4).dump(model)


def test_convert_reads_an_old_pickled_model_and_keeps_its_version_and_answers(tiny_model, tiny_model_dir, tmp_path):
    import hashlib

    from typer.testing import CliRunner

    from chuishao.cli import app

    old = tmp_path / "old"
    old.mkdir()
    _pickle_as_before(tiny_model, old / "model.joblib")
    (old / "manifest.json").write_text(json.dumps({
        "format": "chuishao-model/1", "version": "tiny-old-1", "created": "2026-12-01T00:00:00Z",
        "model_sha256": hashlib.sha256((old / "model.joblib").read_bytes()).hexdigest()}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="chuishao model convert"):
        load_model(old)
    runner = CliRunner()
    assert "only convert models you trust" in " ".join(runner.invoke(app, ["model", "convert", "--help"]).output.split())
    result = runner.invoke(app, ["model", "convert", str(old), "-o", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    converted = load_model(tmp_path / "new")
    assert converted.version == "tiny-old-1" and read_manifest(tmp_path / "new")["created"] == "2026-12-01T00:00:00Z"
    texts = ["楼下烧烤店油烟很大", "晚上广场舞太吵", "小区停车位被占"]
    current = load_model(tiny_model_dir)  # the same weights in half precision, saved by this release
    np.testing.assert_array_equal(converted.predict_proba(texts), current.predict_proba(texts))
    assert [a.model_dump(exclude={"model_version"}) for a in converted.route(texts)] == \
        [a.model_dump(exclude={"model_version"}) for a in current.route(texts)]
    (old / "model.joblib").write_bytes((old / "model.joblib").read_bytes()[:-10])  # cut short: refused
    result = runner.invoke(app, ["model", "convert", str(old), "-o", str(tmp_path / "newer")])
    assert result.exit_code == 2 and "checksum mismatch" in result.output


def test_old_pickles_name_the_package_whistle_and_the_converter_maps_it():
    import pickle
    import sys

    from chuishao.models.classifier import ChuishaoClassifier
    from chuishao.models.legacy import _old_module_names
    from chuishao.models.linear import LinearScorer

    with _old_module_names():
        assert pickle.loads(b"cwhistle.models.classifier\nWhistleClassifier\n.") is ChuishaoClassifier
        assert pickle.loads(b"cwhistle.models.linear\nLinearScorer\n.") is LinearScorer
    assert not any(name == "whistle" or name.startswith("whistle.") for name in sys.modules)


def test_evidence_never_shows_pieces_of_mask_placeholders():
    """The bundled model learnt character n-grams of <phone>, <card>...: "hon" or "ard" mean nothing."""
    import chuishao

    model = chuishao.load_model()
    texts = ["我的电话13812345678打了好几次没人接，小区停水了", "卡号6222021234567890123被冻结，银行不给解释",
             "邮箱a.b@example.com收不到回复，身份证11010519900307123X办不了居住证",
             "座机010-87654321一直占线，联系电话13912345678"]
    for answer in model.route(texts):
        for term in answer.evidence:
            assert not any(term in p for p in ("phone", "id", "card", "email")), (term, answer.evidence)
