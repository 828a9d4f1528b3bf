"""The cascade on a tiny random encoder, the whole path in well under a minute and without downloads:
import -> fine-tune -> export -> dev exclusion -> classical models -> cascade build -> load_model -> predict/route
-> chuishao predict --model -> chuishao tag -> the service."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, TRANSFORMER_EXTRA, installed
from typer.testing import CliRunner

from chuishao.cli import app
from chuishao.errors import ModelLoadError
from chuishao.models.answer import RoutingAnswer
from chuishao.models.cascade import ALL, CascadeModel, RoutingModel, calibrate, fit_cascade, mix
from chuishao.models.persistence import load_model, read_manifest

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]

MINI = FIXTURES / "labelled-mini.jsonl"
NOISE = "每天晚上八点到十点小区广场舞音响声音特别大，严重扰民，老人孩子都无法休息。"
runner = CliRunner()


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path | float]:
    from chuishao.transformer.encoder_import import convert
    from chuishao.transformer.finetune import FinetuneConfig, finetune
    from chuishao.transformer.onnx_export import export_onnx
    from chuishao.transformer.tiny import write_tiny_e5

    t0 = time.time()
    tmp = tmp_path_factory.mktemp("cascade")
    rows = [json.loads(x) for x in MINI.read_text(encoding="utf-8").splitlines() if x.strip()]
    write_tiny_e5(tmp / "tiny.bin", [r["title"] + "。" + r["text"] for r in rows], hidden=32, layers=1, heads=2, ffn=64)
    convert(tmp / "tiny.bin", tmp / "enc", keep_vocab_from=[MINI])
    finetune(FinetuneConfig(model_dir=str(tmp / "enc"), train=str(MINI), out_dir=str(tmp / "ft"), max_steps=2,
                            batch_size=8, max_length=48, lr=1e-3, threads=1, dev_fraction=0.2))
    export_onnx(tmp / "ft", tmp / "onnx", quantize=True)
    cfg = tmp / "tiny.yaml"
    cfg.write_text("features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n", encoding="utf-8")
    _ok(runner.invoke(app, ["transformer", "dev-exclude", str(MINI), "-o", str(tmp / "dev.jsonl"), "--corpus", str(MINI),
                            "--dev-fraction", "0.2"]))
    _ok(runner.invoke(app, ["train", str(MINI), "-o", str(tmp / "classical"), "--config", str(cfg)]))
    _ok(runner.invoke(app, ["train", str(MINI), "-o", str(tmp / "dev-classical"), "--config", str(cfg),
                            "--exclude", str(tmp / "dev.jsonl")]))
    out = _ok(runner.invoke(app, ["transformer", "cascade", "--classical", str(tmp / "classical"), "--dev-classical",
                                  str(tmp / "dev-classical"), "--transformer", str(tmp / "onnx"), "--dev-from", str(MINI),
                                  "--dev-fraction", "0.2", "-o", str(tmp / "cascade")]))
    assert "dev macro-F1" in out
    return {"tmp": tmp, "dir": tmp / "cascade", "seconds": time.time() - t0}


def test_dev_exclusion_holds_the_dev_ids(built) -> None:
    from chuishao.transformer.cascade_build import dev_rows

    held = [json.loads(x) for x in (built["tmp"] / "dev.jsonl").read_text().splitlines()]  # type: ignore[operator]
    ids = [r["id"] for r in held]
    assert ids == [r["id"] for r in dev_rows(MINI, 0.2, 0)]  # the corpus (here the same file) adds no other copies
    # a held-out file like any test file: the training data check reads its texts and labels
    assert [(r["text"], r["label"]) for r in held] == [(r["text"], r["label"]) for r in dev_rows(MINI, 0.2, 0)]
    manifest = read_manifest(built["tmp"] / "dev-classical")  # type: ignore[operator]
    assert manifest["dropped_rows"]["held_out"] == len(ids)  # type: ignore[index]


def test_directory_layout_and_manifest(built) -> None:
    d: Path = built["dir"]  # type: ignore[assignment]
    manifest = read_manifest(d)
    assert manifest["model_type"] == "cascade" and str(manifest["version"]).startswith("chuishao-cascade-")
    files = manifest["files"]
    assert {"cascade.json", "classical/manifest.json", "classical/model.json", "classical/model.safetensors",
            "transformer/model.onnx", "transformer/tokenizer.json", "transformer/chuishao_transformer.json"} <= set(files)
    state = json.loads((d / "cascade.json").read_text())
    assert 0 <= state["weight"] <= 1 and state["temperature"] > 0 and {"classical", "transformer", "cascade"} <= set(state["dev"])


def test_load_predict_route(built) -> None:
    model = load_model(built["dir"])  # type: ignore[arg-type]
    assert isinstance(model, CascadeModel) and isinstance(model, RoutingModel)
    assert model.version == read_manifest(built["dir"])["version"]  # type: ignore[arg-type]
    texts = [NOISE, "家门口的路灯坏了一个多月，晚上漆黑一片。"]
    proba = model.predict_proba(texts)
    assert proba.shape == (2, len(model.classes_)) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert model.predict(texts) == [model.classes_[i] for i in proba.argmax(1)]
    answers = model.route([*texts, "   "], ids=["a", "b", "c"])
    assert [a.id for a in answers] == ["a", "b", "c"] and answers[2].error and answers[0].model_version == model.version
    assert answers[0].topic == model.classes_[int(proba[0].argmax())]
    assert answers[0].confidence == pytest.approx(float(proba[0].max()), abs=1e-4)
    assert answers[0].needs_review == (proba[0].max() < model.params.review_threshold)
    model.warm_up()
    copy = pickle.loads(pickle.dumps(model))  # process pools and Spark copy the model
    np.testing.assert_allclose(copy.predict_proba(texts), proba, atol=1e-6)


def test_the_mix_and_the_gate() -> None:
    pc = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    pt = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    rescored = pc.max(1) < 0.8
    p = mix(pc, pt[rescored], rescored, 0.5)
    np.testing.assert_allclose(p, [[0.9, 0.1], [0.7, 0.3], [0.275, 0.725]])
    np.testing.assert_allclose(calibrate(p, 1.0), p, atol=1e-6)
    y = np.array([0, 0, 1])
    params = fit_cascade(pc, pt, y, 0.95, weights=(0.0, 0.5), gates=(0.8, ALL))
    assert params.weight == 0.5 and params.gate == 0.8 and params.dev["cascade"]["accuracy"] == 1.0


def test_cli_predict_tag_and_serve(built, tmp_path) -> None:
    d = str(built["dir"])
    result = runner.invoke(app, ["predict", "--model", d, NOISE])
    _ok(result)
    answer = json.loads(result.stdout)
    assert set(answer) == set(RoutingAnswer.model_fields) and answer["model_version"].startswith("chuishao-cascade-")
    src = tmp_path / "in.jsonl"
    src.write_text(MINI.read_text(encoding="utf-8"), encoding="utf-8")
    _ok(runner.invoke(app, ["tag", str(src), "-o", str(tmp_path / "out.jsonl"), "--model", d]))
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 34 and all(r["topic"] for r in rows)
    result = runner.invoke(app, ["test", d, str(MINI)])
    figures = json.loads(_ok(result).strip().splitlines()[-1])
    assert figures["model_version"] == answer["model_version"] and 0 <= figures["macro_f1"] <= 1
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from chuishao.serve.app import create_app
    from chuishao.serve.settings import ServeSettings

    settings = ServeSettings(model_dir=Path(d), db_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}", api_keys=["k"],
                             model_poll_seconds=0, max_batch=8, max_body_bytes=200_000)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/classify", json={"text": NOISE, "id": "m-1"}, headers={"X-API-Key": "k"})
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == answer["model_version"]


def test_a_tampered_cascade_is_refused(built, tmp_path) -> None:
    import shutil

    d = tmp_path / "c"
    shutil.copytree(built["dir"], d)  # type: ignore[arg-type]
    (d / "cascade.json").write_text((d / "cascade.json").read_text().replace('"weight"', '"weight" ', 1))
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model(d)


def test_train_model_type_cascade_builds_and_resumes(built, tmp_path) -> None:
    """`chuishao train --model-type cascade --base ENC`: the whole recipe from one config; a rerun resumes."""
    tmp = built["tmp"]
    cfg = tmp_path / "cascade.yaml"
    cfg.write_text("features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n"
                   "transformer: {max_length: 48, epochs: 1, batch_size: 8, dev_fraction: 0.2, threads: 1, "
                   "evals_per_epoch: 1, extra_rows: true, max_other: null, encoders: 2}\n", encoding="utf-8")
    out, work = tmp_path / "model", tmp_path / "work"
    args = ["train", str(MINI), "-o", str(out), "--config", str(cfg), "--model-type", "cascade",
            "--base", str(tmp / "enc"), "--work-dir", str(work)]
    first = runner.invoke(app, args)
    _ok(first)
    assert "unreadable" not in first.stderr  # the dev-exclusion file reads as a held-out file
    summary = json.loads(next(line for line in first.stdout.splitlines() if line.startswith('{"model"')))
    assert summary["model"] == str(out) and 0 <= summary["weight"] <= 1
    manifest = read_manifest(out)
    assert manifest["model_type"] == "cascade" and manifest["recipe"]["model_type"] == "cascade"
    assert manifest["recipe"]["transformer"]["base"] == str(tmp / "enc")
    model = load_model(out)
    assert isinstance(model, CascadeModel) and model.route([NOISE])[0].topic in model.classes_
    assert {p.name for p in work.iterdir()} >= {"classical", "dev-classical", "encoder", "onnx", "dev-exclude.jsonl",
                                                "extra.jsonl", "finetune.done.json", "encoder-2", "onnx-2",
                                                "finetune-2.done.json"}
    assert manifest["transformer"]["members"] == 2  # type: ignore[index]
    tuned = [json.loads((work / d / "chuishao_transformer.json").read_text())["config"] for d in ("encoder", "encoder-2")]
    assert [t["seed"] for t in tuned] == [0, 1] and [t["split_seed"] for t in tuned] == [0, 0]
    second = runner.invoke(app, args)
    _ok(second)
    assert "finetune: done before" in second.stderr and "classical: done before" in second.stderr
    changed = runner.invoke(app, [*args, "--transformer.lr", "0.002", "--transformer.bf16", "true"])
    _ok(changed)
    # the encoder's settings changed: it is fine-tuned again (in bfloat16), the classical models are kept
    assert "finetune: running" in changed.stderr
    for step in ("classical", "dev-exclude", "dev-classical", "extra-rows"):
        assert f"{step}: done before" in changed.stderr
    assert json.loads((work / "encoder" / "chuishao_transformer.json").read_text())["config"]["bf16"] is True
    held = runner.invoke(app, [*args, "--transformer.dev_fraction", "0.3"])
    _ok(held)  # the dev split changed: everything after the full classical model runs again
    assert "classical: done before" in held.stderr and "dev-classical: running" in held.stderr
    pre = runner.invoke(app, [*args, "--transformer.dev_fraction", "0.3", "--transformer.pretrain_steps", "2"])
    _ok(pre)  # masked-LM pretraining first; the encoders are fine-tuned from its output, the rest is kept
    assert "pretrain: running" in pre.stderr and "extra-rows: done before" in pre.stderr
    pretrained = json.loads((work / "pretrained" / "chuishao_pretrain.json").read_text())
    dev_ids = {json.loads(line)["id"] for line in (work / "dev-exclude.jsonl").read_text().splitlines() if line}
    assert pretrained["steps"] == 2 and pretrained["held_out_ids"] == len(dev_ids) > 0  # the dev rows stay out
    tuned = [json.loads((work / d / "chuishao_transformer.json").read_text())["config"] for d in ("encoder", "encoder-2")]
    assert [t["model_dir"] for t in tuned] == [str(work / "pretrained")] * 2
    refit = runner.invoke(app, [*args, "--transformer.dev_fraction", "0.3", "--transformer.pretrain_steps", "2",
                                "--transformer.refit", "true"])
    _ok(refit)  # the dev-split encoders fit the cascade; their twins trained on every row ship in their place
    for step in ("pretrain", "finetune", "finetune-2", "export-onnx", "export-onnx-2"):
        assert f"{step}: done before" in refit.stderr
    assert "refit: running" in refit.stderr and "refit-2: running" in refit.stderr
    extra = sum(1 for line in (work / "extra.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    for sub, twin, shipped in (("", "encoder", "transformer"), ("-2", "encoder-2", "transformer-2")):
        meta = json.loads((work / f"encoder-refit{sub}" / "chuishao_transformer.json").read_text())
        dev_meta = json.loads((work / twin / "chuishao_transformer.json").read_text())
        assert meta["dev_rows"] == 0 and meta["train_rows"] == len(MINI.read_text().splitlines()) + extra
        assert meta["temperature"] == dev_meta["temperature"] and meta["config"]["model_dir"] == str(work / "pretrained")
        sent = (out / shipped / "model.int8.onnx").read_bytes()
        assert sent == (work / f"onnx-refit{sub}" / "model.int8.onnx").read_bytes()
        assert sent != (work / f"onnx{sub}" / "model.int8.onnx").read_bytes()
    assert json.loads((out / "cascade.json").read_text())["dev"]["refit"] is True
    assert isinstance(load_model(out), CascadeModel)
    twin = json.loads((work / "encoder" / "chuishao_transformer.json").read_text())
    refitted = json.loads((work / "encoder-refit" / "chuishao_transformer.json").read_text())
    rows = len(MINI.read_text().splitlines()) + extra  # the twin's best step, scaled to every row
    assert refitted["global_step"] == max(1, round(twin["best_step"] * rows / twin["train_rows"]))
    off = runner.invoke(app, [*args, "--transformer.dev_fraction", "0.3", "--transformer.pretrain_steps", "2"])
    _ok(off)  # refit off again: nothing runs, the dev-split encoders ship
    assert "running" not in off.stderr and "refit" not in off.stderr
    assert (out / "transformer" / "model.int8.onnx").read_bytes() == (work / "onnx" / "model.int8.onnx").read_bytes()
    assert json.loads((out / "cascade.json").read_text())["dev"]["refit"] is False


FRESH = ["楼下垃圾桶三天没人清理，臭味很大，夏天招苍蝇。", "小区门口的路灯坏了一个多月了，晚上出行很不方便。",
         "隔壁饭店的油烟直接排到我家窗户，呛得人喘不过气。", "请问公积金怎么提取，需要哪些材料？",
         "楼顶有人私自加盖了两层彩钢房，存在安全隐患。", "半夜装修电钻声不停，投诉多次没人管。",
         "马路上的井盖松动，车开过去哐哐响。", "小区绿地被人圈起来种菜，希望恢复原样。"]


def test_students_learn_from_the_corpus_messages_the_first_encoders_label(built, tmp_path) -> None:
    """transformer.students 1: the corpus messages in no labelled file, labelled by the dev-only classical model and
    the first encoder, train a second encoder that joins the mean; a rerun keeps every step."""
    from chuishao.models.onnx_encoder import load_encoders
    from chuishao.models.persistence import load_classical

    tmp: Path = built["tmp"]  # type: ignore[assignment]
    corpus = tmp_path / "corpus.jsonl"
    labelled = MINI.read_text(encoding="utf-8")
    fresh = [{"id": f"c{i}", "title": t[:6], "text": t} for i, t in enumerate(FRESH)]
    corpus.write_text(labelled + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in fresh), encoding="utf-8")
    cfg = tmp_path / "students.yaml"
    cfg.write_text("features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n"
                   "transformer: {max_length: 48, epochs: 1, batch_size: 8, dev_fraction: 0.2, threads: 1, "
                   "evals_per_epoch: 1, extra_rows: true, max_other: null, encoders: 1, students: 1, "
                   "student_confidence: 0.1}\n", encoding="utf-8")
    out, work = tmp_path / "model", tmp_path / "work"
    args = ["train", str(MINI), "-o", str(out), "--config", str(cfg), "--model-type", "cascade", "--base",
            str(tmp / "enc"), "--work-dir", str(work), "--corpus", str(corpus)]
    first = runner.invoke(app, args)
    _ok(first)
    assert "pseudo-labels: running" in first.stderr and "student: running" in first.stderr
    pseudo = [json.loads(x) for x in (work / "pseudo-labels.jsonl").read_text(encoding="utf-8").splitlines()]
    # the teachers' answer on every fresh message, recomputed: the dev-only classical model and the encoder, half each
    classical = load_classical(work / "dev-classical")
    p = classical.predict_proba(FRESH, titles=[r["title"] for r in fresh])
    encoder = load_encoders([work / "onnx"], int8=True)
    pe = encoder.predict_proba(fresh)[:, [encoder.labels.index(c) for c in classical.classes_]]
    p = 0.5 * p + 0.5 * pe / pe.sum(axis=1, keepdims=True)
    sure = {r["id"]: classical.classes_[int(i)] for r, i, c in zip(fresh, p.argmax(1), p.max(1), strict=True) if c >= 0.1}
    assert sure and {r["id"]: r["label"] for r in pseudo} == sure  # no labelled message comes back
    assert f"pseudo-labels: {len(pseudo)} corpus messages for the students" in first.stderr
    meta = json.loads((work / "student" / "chuishao_transformer.json").read_text())
    tuned = json.loads((work / "encoder" / "chuishao_transformer.json").read_text())
    assert meta["train_rows"] == tuned["train_rows"] + len(pseudo) and meta["dev_rows"] == tuned["dev_rows"]
    assert meta["config"]["seed"] == tuned["config"]["seed"] and meta["config"]["extra_train"][-1].endswith("pseudo-labels.jsonl")
    manifest = read_manifest(out)
    assert manifest["transformer"]["members"] == 2  # type: ignore[index]
    assert json.loads((out / "cascade.json").read_text())["dev"]["encoders"] == 2
    assert (out / "transformer-2" / "model.int8.onnx").read_bytes() == (work / "onnx-student" / "model.int8.onnx").read_bytes()
    again = runner.invoke(app, args)
    _ok(again)
    assert "running" not in again.stderr and "student: done before" in again.stderr
    meta_file = work / "onnx" / "chuishao_transformer.json"  # the teacher fine-tuned again since (another temperature)
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "temperature": 0.5}), encoding="utf-8")
    stale = runner.invoke(app, args)
    _ok(stale)
    assert "export-onnx: done before" in stale.stderr and "pseudo-labels: running" in stale.stderr
    assert "student: running" in stale.stderr and "export-student: running" in stale.stderr


def test_pseudo_labels_keep_the_confident_cap_other_and_refuse_to_be_empty(built, tmp_path) -> None:
    """The teacher's confident labels only, OTHER capped, messages the classical model refuses left out; no row at
    all is an error (a student would learn nothing its seed's encoder did not)."""
    from chuishao.errors import DataError
    from chuishao.models.onnx_encoder import load_encoders
    from chuishao.models.persistence import load_classical
    from chuishao.transformer.pseudo_labels import pseudo_label

    tmp: Path = built["tmp"]  # type: ignore[assignment]
    rows = [json.loads(x) for x in MINI.read_text(encoding="utf-8").splitlines() if x.strip()]
    messages = [{"id": f"c{i}", "title": r["title"], "text": r["text"] + "。"} for i, r in enumerate(rows)]
    refused = {"id": "c-latin", "title": None, "text": "hello world, no Chinese here at all"}
    classical = load_classical(tmp / "dev-classical")
    encoder = load_encoders([tmp / "onnx"], int8=False)
    pe = encoder.predict_proba(messages)[:, [encoder.labels.index(c) for c in classical.classes_]]
    p = 0.5 * classical.predict_proba([m["text"] for m in messages], titles=[m["title"] for m in messages])
    p += 0.5 * pe / pe.sum(axis=1, keepdims=True)
    teacher = {m["id"]: (classical.classes_[int(i)], float(c)) for m, i, c in zip(messages, p.argmax(1), p.max(1), strict=True)}
    cut = float(np.median([c for _, c in teacher.values()]))
    out = tmp_path / "pseudo.jsonl"
    result = pseudo_label(tmp / "dev-classical", [tmp / "onnx"], [*messages, refused], out, int8=False,
                          min_confidence=cut, max_other=1, seed=3)
    got = {r["id"]: r["label"] for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    sure = {i: lab for i, (lab, c) in teacher.items() if c >= cut}
    assert result["scored"] == len(messages) and result["confident"] == len(sure) >= len(messages) // 2
    assert result["refused"] == 1  # the classical model refuses a text without Chinese: not labelled
    assert {i: lab for i, lab in sure.items() if lab != "OTHER"} == {i: lab for i, lab in got.items() if lab != "OTHER"}
    others = [i for i, lab in got.items() if lab == "OTHER"]
    assert len(others) == min(1, sum(lab == "OTHER" for lab in sure.values())) and set(others) <= set(sure)
    with pytest.raises(DataError, match="no corpus message for the students to learn from"):
        pseudo_label(tmp / "dev-classical", [tmp / "onnx"], [refused], out, int8=False)
    with pytest.raises(DataError, match=f"of {len(messages)} scored, none labelled with at least 1 "):
        pseudo_label(tmp / "dev-classical", [tmp / "onnx"], messages, out, int8=False, min_confidence=1.0)


def test_two_encoders_answer_as_their_mean(built, tmp_path) -> None:
    """`transformer cascade --transformer A --transformer B`: both ship, the manifest counts them, the loaded
    cascade re-scores with the mean of their probabilities, and a copy in another process answers the same."""
    from chuishao.models.onnx_encoder import EncoderEnsemble, OnnxClassifier
    from chuishao.transformer.finetune import FinetuneConfig, finetune
    from chuishao.transformer.onnx_export import export_onnx

    tmp: Path = built["tmp"]  # type: ignore[assignment]
    finetune(FinetuneConfig(model_dir=str(tmp / "enc"), train=str(MINI), out_dir=str(tmp_path / "ft2"), max_steps=2,
                            batch_size=8, max_length=48, lr=1e-3, threads=1, dev_fraction=0.2, seed=1, split_seed=0))
    export_onnx(tmp_path / "ft2", tmp_path / "onnx2", quantize=True)
    out = tmp_path / "pair"
    _ok(runner.invoke(app, ["transformer", "cascade", "--classical", str(tmp / "classical"), "--dev-classical",
                            str(tmp / "dev-classical"), "--transformer", str(tmp / "onnx"), "--transformer",
                            str(tmp_path / "onnx2"), "--dev-from", str(MINI), "--dev-fraction", "0.2", "-o", str(out)]))
    manifest = read_manifest(out)
    assert manifest["transformer"]["members"] == 2  # type: ignore[index]
    assert {n.split("/")[0] for n in manifest["files"]} >= {"transformer", "transformer-2"}  # type: ignore[union-attr]
    model = load_model(out)
    assert isinstance(model, CascadeModel) and isinstance(model.encoder, EncoderEnsemble)
    records = [{"title": None, "text": NOISE}, {"title": "路灯", "text": "小区门口路灯坏了一个月没人修"}]
    one, two = OnnxClassifier.load(tmp / "onnx"), OnnxClassifier.load(tmp_path / "onnx2")
    cols = [two.labels.index(c) for c in one.labels]
    expected = (one.predict_proba(records) + two.predict_proba(records)[:, cols]) / 2
    np.testing.assert_allclose(model.encoder.predict_proba(records), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(one.predict_proba(records), expected)  # the second seed does change the answer
    copy = pickle.loads(pickle.dumps(model.encoder))
    np.testing.assert_allclose(copy.predict_proba(records), expected, rtol=1e-5, atol=1e-6)
    assert model.route([NOISE])[0].topic in model.classes_
    base = ["transformer", "cascade", "--classical", str(tmp / "classical"), "--dev-classical", str(tmp / "dev-classical"),
            "--transformer", str(tmp / "onnx"), "--dev-from", str(MINI), "--dev-fraction", "0.2"]
    bad = runner.invoke(app, [*base, "--ship", str(tmp / "onnx"), "--ship", str(tmp_path / "onnx2"), "-o",
                              str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "2 encoders to ship for 1 fitted on dev" in bad.output
    bad = runner.invoke(app, [*base, "--ship", str(tmp_path / "onnx2"), "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "temperature" in bad.output and not (tmp_path / "bad").exists()
    # the same encoder fine-tuned on every row with its twin's temperature ships in the twin's place
    twin_t = json.loads((tmp / "onnx" / "chuishao_transformer.json").read_text())["temperature"]
    finetune(FinetuneConfig(model_dir=str(tmp / "enc"), train=str(MINI), out_dir=str(tmp_path / "all"), max_steps=2,
                            batch_size=8, max_length=48, lr=1e-3, threads=1, dev_fraction=0.0, temperature=twin_t))
    export_onnx(tmp_path / "all", tmp_path / "onnx-all", quantize=True)
    _ok(runner.invoke(app, [*base, "--ship", str(tmp_path / "onnx-all"), "-o", str(tmp_path / "shipped")]))
    fitted = json.loads((tmp / "cascade" / "cascade.json").read_text())  # the same dev fit as the built one
    sent = json.loads((tmp_path / "shipped" / "cascade.json").read_text())
    assert sent["weight"] == fitted["weight"] and sent["gate"] == fitted["gate"] and sent["dev"]["refit"] is True
    assert fitted["dev"]["refit"] is False
    assert ((tmp_path / "shipped" / "transformer" / "model.onnx").read_bytes()
            == (tmp_path / "onnx-all" / "model.onnx").read_bytes())


def test_encoders_with_other_labels_are_not_averaged(built) -> None:
    from dataclasses import replace

    from chuishao.models.onnx_encoder import EncoderEnsemble, OnnxClassifier

    one = OnnxClassifier.load(built["tmp"] / "onnx")  # type: ignore[operator]
    other = replace(one, meta={**one.meta, "labels": [*one.labels[:-1], "W99"]})
    with pytest.raises(ValueError, match=r"labels .* differ"):
        EncoderEnsemble([one, other])
    with pytest.raises(ValueError, match="at least one"):
        EncoderEnsemble([])


def test_a_cascade_knows_which_test_rows_it_was_trained_on(built) -> None:
    """`chuishao test` on a cascade says how many rows were training rows (from its classical part's prints)."""
    from chuishao.training.data import read_labelled
    from chuishao.training.evaluate import training_overlap

    model = load_model(built["dir"])  # type: ignore[arg-type]
    assert isinstance(model, CascadeModel) and model.training_rows_ is model.classical.training_rows_
    overlap = training_overlap(model, read_labelled(MINI))
    assert overlap["checked"] is True and overlap["rows"] == overlap["of"]  # the cascade was trained on MINI


def test_a_message_gets_the_same_encoder_answer_alone_or_in_a_batch(built) -> None:
    """Dynamic int8 scales activations by the batch's range: the int8 encoder must not let the batch change a
    message's answer (the service scores one message, `tag` thousands)."""
    from chuishao.models.onnx_encoder import OnnxClassifier

    rows = [json.loads(x) for x in MINI.read_text(encoding="utf-8").splitlines() if x.strip()][:24]
    for int8 in (True, False):
        enc = OnnxClassifier.load(built["tmp"] / "onnx", int8=int8)  # type: ignore[operator]
        together = enc.predict_proba(rows)
        alone = np.vstack([enc.predict_proba([r]) for r in rows])
        np.testing.assert_allclose(together, alone, atol=1e-5)
