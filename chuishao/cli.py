"""The `chuishao` command: train / test / predict / tag (verbs in the style of fastText)."""

from __future__ import annotations

import inspect
import json
import sys
import time
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from chuishao.errors import ChuishaoError, DataError
from chuishao.transformer.cli import app as transformer_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sort Chinese resident complaints into the 15 whistle topics and route them.")

ModelOpt = Annotated[Path | None, typer.Option("--model", "-m", help="model directory (default: the bundled model)")]
RoutingOpt = Annotated[Path | None, typer.Option(
    "--taxonomy", help="route with this taxonomy YAML (a city's edited names and departments); its codes must be the model's")]
GazetteerOpt = Annotated[str | None, typer.Option(
    "--gazetteer", help="the city's places (YAML, see docs/places.md) for each answer's jurisdiction; "
                        "default: the bundled example; none: no place extraction")]
IdField = Annotated[str, typer.Option("--id-field", help="column/field holding the message id")]
TextField = Annotated[str, typer.Option("--text-field", help="column/field holding the message text")]
TitleField = Annotated[str, typer.Option("--title-field", help="column/field holding the title ('' for none)")]


def _print_version(value: bool) -> None:
    if value:
        from chuishao.version import __version__

        typer.echo(f"chuishao {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print the version and exit")] = False,
) -> None:
    """Sort Chinese resident complaints into the 15 whistle topics and route them."""


def _fail(exc: Exception) -> None:
    typer.echo(f"chuishao: error: {exc}", err=True)
    raise typer.Exit(2)


def _writable_dir(path: Path, what: str) -> None:
    """Refuse before the work, not after it: a directory to write must be one we can create and write."""
    import tempfile

    if path.exists() and not path.is_dir():
        raise DataError(f"{path}: exists and is not a directory; give a new or existing directory for {what}")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{path}: cannot be created for {what}: {existing} is a file, not a directory")
    try:  # the real test: permissions, read-only file systems, ACLs
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise DataError(f"{path}: cannot write {what} there ({exc.strerror or exc})") from None


def _routing(path: Path | None):
    """The taxonomy file given with --taxonomy to route with (None: the model's own)."""
    from chuishao.taxonomy import Taxonomy

    return Taxonomy.load(path) if path is not None else None


def _annotator(gazetteer: str | None):
    """The answers' annotators: the place (from --gazetteer) and the urgency."""
    from chuishao.pipeline.annotate import build_annotator

    return build_annotator(gazetteer)


def _load(model_dir: Path | None, routing: Path | None, gazetteer: str | None = None, *, annotate: bool = True):
    """The model to answer with; ``annotate`` False: its bare answers (a command that needs only the scores)."""
    from chuishao.models.annotated import annotated
    from chuishao.models.persistence import load_model

    annotator = _annotator(gazetteer) if annotate else None  # before the model: a bad gazetteer fails fast
    return annotated(load_model(model_dir, taxonomy=_routing(routing)), annotator)


def _fields(id_field: str, text_field: str, title_field: str):
    from chuishao.io.records import FieldMap

    return FieldMap(id=id_field, text=text_field, title=title_field or None)


# ---- train: the options are the config's keys ---------------------------------------------------
def _split_args(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Positional words, and ``--KEY VALUE`` / ``--KEY=VALUE`` pairs no declared option took
    (e.g. ``--paths.city DIR`` for a variable a config file defines, or a mistyped key). A key
    with no value gets an empty list: the config then says whether the key exists at all."""
    positional: list[str] = []
    overrides: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            values = overrides.setdefault(key, [])
            if eq:
                values.append(value)
            elif i < len(args) and not args[i].startswith("--"):
                values.append(args[i])
                i += 1
        elif arg.startswith("-") and arg != "-":
            raise DataError(f"no such option: {arg}")
        else:
            positional.append(arg)
    return positional, overrides


def _metavar(key: str, field) -> str:
    from chuishao.config import value_kind

    if field is None:
        return "DIR"
    if key == "data.taxonomy":
        return "default|none|FILE"
    annotation = field.annotation
    many, nullable = value_kind(annotation)
    choices = [a for arg in (annotation, *typing.get_args(annotation)) for a in typing.get_args(arg) if isinstance(a, str)]
    if choices:  # Literal[...] or Literal[...] | None
        name = "|".join(choices)
    elif many:
        name = "FILE,..." if key.startswith("data.") else "LO,HI"
    elif key == "data.corpus":
        name = "FILE"
    else:
        name = {int: "INT", float: "FLOAT"}.get(annotation, "INT" if "int" in str(annotation) else "TEXT")
    return f"{name}|null" if nullable else name


def _config_params() -> list[inspect.Parameter]:
    """One --KEY option per config key, documented from chuishao/config.py."""
    from chuishao.config import ChuishaoConfig, config_keys, value_kind, yaml_scalar

    defaults = ChuishaoConfig().model_dump()
    params = []
    for key, field in config_keys():
        section, _, name = key.partition(".")
        default = defaults[section][name] if name else defaults[section]
        text = (field.description or "") if field is not None else f"path variable, ${{{key}}} in the data section"
        many = field is not None and value_kind(field.annotation)[0]
        if key.startswith("data.") and many:  # the option sets the list; the old flag (DATA) adds to it
            adder = "DATA" if key == "data.train" else "--" + key.removeprefix("data.").replace("_", "-")
            text += f"; {adder} adds to the list"
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else yaml_scalar(default)
        help_text = f"{text} (default {shown})"  # not [...]: rich would read it as markup
        option = typer.Option(f"--{key}", help=help_text, metavar=_metavar(key, field),
                              rich_help_panel=f"Config: {section}", show_default=False)
        kind = list[str] | None if many else str | None
        params.append(inspect.Parameter("cfg_" + key.replace(".", "__"), inspect.Parameter.KEYWORD_ONLY,
                                        default=None, annotation=Annotated[kind, option]))
    return params


_DATA_PANEL = "Data flags (each sets a data.* key or adds to its list)"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="model directory to write")],
    args: Annotated[list[str] | None, typer.Argument(
        metavar="DATA", help="labelled JSONL/CSV file(s), added to data.train")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="YAML/JSON config, the whole recipe (e.g. configs/default.yaml); none: the code's defaults")] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="sets data.corpus", rich_help_panel=_DATA_PANEL)] = None,
    extra_labels: Annotated[list[Path] | None, typer.Option(
        "--extra-labels", help="adds to data.extra_labels", rich_help_panel=_DATA_PANEL)] = None,
    extra_data: Annotated[list[Path] | None, typer.Option(
        "--extra-data", help="adds to data.extra_data (e.g. feedback.jsonl)", rich_help_panel=_DATA_PANEL)] = None,
    sheets: Annotated[list[Path] | None, typer.Option(
        "--sheets", help="adds to data.sheets (a labelling sheet from suggest-labels, filled)",
        rich_help_panel=_DATA_PANEL)] = None,
    exclude: Annotated[list[Path] | None, typer.Option(
        "--exclude", help="adds to data.exclude", rich_help_panel=_DATA_PANEL)] = None,
    label_field: Annotated[str | None, typer.Option(
        "--label-field", help="sets data.label_field", rich_help_panel=_DATA_PANEL)] = None,
    taxonomy: Annotated[str | None, typer.Option(
        "--taxonomy", help="sets data.taxonomy: default, none or a taxonomy YAML", rich_help_panel=_DATA_PANEL)] = None,
    id_field: Annotated[str | None, typer.Option("--id-field", help="sets data.id_field", rich_help_panel=_DATA_PANEL)] = None,
    text_field: Annotated[str | None, typer.Option(
        "--text-field", help="sets data.text_field", rich_help_panel=_DATA_PANEL)] = None,
    title_field: Annotated[str | None, typer.Option(
        "--title-field", help="sets data.title_field", rich_help_panel=_DATA_PANEL)] = None,
    allow_leakage: Annotated[bool, typer.Option(
        "--allow-leakage", help="train even on rows that copy a held-out (data.exclude) row: sets data.leakage allow",
        rich_help_panel=_DATA_PANEL)] = False,
    model_type: Annotated[str | None, typer.Option(
        "--model-type", help="sets model_type: classical | cascade (classical + a fine-tuned encoder, hours on a CPU)")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="sets transformer.base: the encoder folder a cascade fine-tunes")] = None,
    work_dir: Annotated[Path | None, typer.Option(
        "--work-dir", help="cascade: folder for the steps' outputs, so a rerun resumes (default OUTPUT.work)")] = None,
    **keys: str | list[str] | None,
) -> None:
    """Train a model from a config (the whole recipe, data included) and save it to a directory.

    Any config key is an option: --classifier.C 1.0, --features.char_ngrams 1,4, --data.exclude a.jsonl,b.jsonl,
    --features.max_features null, --seed 3, --paths.shared DIR.
    """
    # the data flags: each sets its data.* key, or adds to its list
    flags = {"corpus": corpus, "extra_labels": extra_labels, "extra_data": extra_data, "sheets": sheets,
             "exclude": exclude,
             "label_field": label_field, "taxonomy": taxonomy, "id_field": id_field, "text_field": text_field,
             "title_field": title_field, "leakage": "allow" if allow_leakage else None}
    try:
        from chuishao.config import ChuishaoConfig, DataConfig
        from chuishao.models.persistence import save_model
        from chuishao.training.train import TrainRequest
        from chuishao.training.train import train as run_train

        data_files, given = _split_args([*(args or []), *ctx.args])
        overrides: dict[str, str | list[str]] = {**given}
        for name, value in keys.items():
            if value is not None and value != []:
                overrides[name.removeprefix("cfg_").replace("__", ".")] = value
        if model_type is not None:
            overrides["model_type"] = model_type
        if base is not None:
            overrides["transformer.base"] = base
        recipe = ChuishaoConfig.load(config, overrides)
        data = recipe.data.model_dump()
        data["train"] += [str(Path(f)) for f in data_files]
        for name, flag in flags.items():
            if isinstance(flag, list):
                data[name] += [str(v) for v in flag]
            elif flag is not None:
                data[name] = str(flag)
        recipe = recipe.model_copy(update={"data": DataConfig.model_validate(data)})
        if recipe.model_type == "cascade":
            _train_cascade(recipe, output, work_dir or output.with_name(output.name + ".work"))
            return
        req = TrainRequest.from_config(recipe)
        req.preflight = _train_preflight(req, recipe.data.leakage)
        _writable_dir(output, "the model")
        model = run_train(req)
        save_model(model, output)
    except (ChuishaoError, ValueError) as exc:
        _fail(exc)
    except OSError as exc:  # e.g. the disk filled while saving: the model dir keeps its old model, if any
        _fail(DataError(f"{exc.filename or output}: {exc.strerror or exc}; the model was not saved"))
    not_learned = model.metadata["not_learned"]
    if isinstance(not_learned, list) and not_learned:  # e.g. a sub-problem this city's data never had: its messages go elsewhere
        named = ", ".join(f"{c} ({model.taxonomy.name_of(c)})" for c in not_learned)
        typer.echo(f"chuishao: warning: no training examples for {named}: the model can never answer "
                   f"{'it' if len(not_learned) == 1 else 'them'}", err=True)
    summary = {"model": str(output), "version": model.version, "labels": model.classes_, **model.heldout_,
               "training_rows": model.metadata["training_rows"], "dropped_rows": model.metadata["dropped_rows"],
               "relabelled_rows": model.metadata["relabelled_rows"],
               "train_seconds": model.metadata["train_seconds"], "not_learned": not_learned}
    typer.echo(json.dumps(summary, ensure_ascii=False))


def _train_cascade(recipe, output: Path, work: Path) -> None:
    """model_type cascade: the classical models through the same preflight and training as a classical model."""
    from chuishao.extras import TRANSFORMER_MODULES, require
    from chuishao.models.persistence import save_model
    from chuishao.recipes.cascade import check_recipe, train_cascade
    from chuishao.training.train import TrainRequest
    from chuishao.training.train import train as run_train

    check_recipe(recipe)
    require(TRANSFORMER_MODULES, "model_type cascade")
    _writable_dir(output, "the model")

    def train_classical(part, folder: Path) -> None:
        req = TrainRequest.from_config(part)
        req.preflight = _train_preflight(req, part.data.leakage)
        save_model(run_train(req), folder)

    result = train_cascade(recipe, output, work, train_classical, say=lambda line: typer.echo(f"chuishao: {line}", err=True))
    typer.echo(json.dumps({"model": str(output), "work_dir": str(work), **result}, ensure_ascii=False, default=str))


def _train_preflight(req, leakage: str):
    """The data check train runs before fitting (chuishao check's leakage test against data.exclude)."""
    from functools import partial

    from chuishao.analysis.checks import train_preflight

    return partial(train_preflight, taxonomy=req.taxonomy, leakage=leakage, fields=req.fields,
                   say=lambda line: typer.echo(f"chuishao: {line}", err=True))


def _with_config_options(func):
    """``func`` taking every config key as a --KEY option (collected in its ``**keys``)."""
    fixed = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
    func.__signature__ = inspect.Signature([*fixed, *_config_params()])
    return func


_with_config_options(train)


config_app = typer.Typer(no_args_is_help=True, help="Configs: the whole recipe of a model (see configs/default.yaml).")
app.add_typer(config_app, name="config")


@config_app.command("show", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def config_show(
    args: Annotated[list[str] | None, typer.Argument(metavar="[--KEY VALUE]...", help="config keys to override")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML/JSON config; none: the code's defaults")] = None,
    resolve: Annotated[bool, typer.Option("--resolve", help="write the data paths with ${paths.NAME} replaced")] = False,
) -> None:
    """Print a config in full, every key documented (configs/default.yaml is this output)."""
    from chuishao.config import ChuishaoConfig, render_config

    try:
        positional, overrides = _split_args(args or [])
        if positional:
            raise DataError(f"unexpected argument {positional[0]!r}; give config keys as --KEY VALUE")
        cfg = ChuishaoConfig.load(config, overrides)
        if resolve:
            cfg = cfg.model_copy(update={"data": cfg.resolved_data()})
    except ChuishaoError as exc:
        _fail(exc)
    typer.echo(render_config(cfg), nl=False)


@app.command()
def test(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    data: Annotated[Path, typer.Argument(help="labelled JSONL/CSV file")],
    label_field: Annotated[str, typer.Option("--label-field")] = "label",
    report: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write a report here: report.html, report.md, metrics.json, per_class.csv, confusion.png")] = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
) -> None:
    """Evaluate a model on labelled data: prints one JSON line of figures."""
    try:
        from chuishao.models.persistence import load_model
        from chuishao.training.data import read_labelled
        from chuishao.training.evaluate import evaluate, write_report

        if report is not None:
            _writable_dir(report, "the report")
        model = load_model(model_dir)
        labelled = read_labelled(data, label_field, _fields(id_field, text_field, title_field))
        details: dict[str, object] = {}
        metrics = evaluate(model, labelled, details=details)
        metrics["model_version"] = model.version
    except ChuishaoError as exc:
        _fail(exc)
    overlap: dict = metrics["training_overlap"]  # type: ignore[assignment]
    typer.echo(f"chuishao: {'warning: ' if overlap['rows'] else ''}{overlap['message']}", err=True)
    shown = {k: v for k, v in metrics.items() if k not in ("confusion", "labels")}
    typer.echo(json.dumps(shown, ensure_ascii=False))  # the figures first: a failed report must not lose them
    if report is not None:
        try:
            from chuishao.analysis.report_html import write_html_report

            write_report(metrics, report, title=f"{model.version} on {data.name}")
            write_html_report(metrics, details, model, labelled, report, title=f"{model.version} on {data.name}")
        except OSError as exc:
            _fail(DataError(f"{exc.filename or report}: {exc.strerror or exc}; the report was not written"))


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(
        metavar="SRC", help="CSV/TSV, XLSX, JSONL or Parquet file, or a Hugging Face dataset (save_to_disk folder, "
                            "folder of data files, .arrow file)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL to write: id, title, text, label, sub")],
    mapping: Annotated[Path | None, typer.Option(
        "--mapping", help="label mapping: CSV source,target[,sub] or YAML, from the city's categories to topics "
                          "(OTHER allowed, DROP leaves a category out)")] = None,
    unmapped: Annotated[str | None, typer.Option(
        "--unmapped", help="labels the mapping does not know: other (become OTHER) or drop; without: an error")] = None,
    label_field: Annotated[str, typer.Option("--label-field", help="column/field holding the city's label")] = "label",
    sub_field: Annotated[str, typer.Option("--sub-field", help="column/field holding a sub-problem code ('' for none)")] = "sub",
    time_field: Annotated[str | None, typer.Option("--time-field", help="column/field holding the time, kept as 'time'")] = None,
    taxonomy: Annotated[str, typer.Option("--taxonomy", help="default, none (any labels) or a taxonomy YAML")] = "default",
    split: Annotated[str | None, typer.Option("--split", help="split of a Hugging Face dataset with several")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel worksheet (default: the first)")] = None,
    mask_pii: Annotated[bool, typer.Option(
        "--mask-pii/--keep-pii", help="mask phone, ID-card, bank-card numbers and e-mails in the texts written")] = True,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
) -> None:
    """Import a city's labelled messages as training JSONL, mapping its own categories to the whistle topics.

    Unmapped labels are an error that lists each with its count, unless --unmapped other|drop says what to do."""
    try:
        from chuishao.analysis.importer import LabelMap, import_labelled
        from chuishao.taxonomy import Taxonomy

        if unmapped is not None and unmapped not in ("other", "drop"):
            raise DataError(f"--unmapped {unmapped!r}: use other or drop")
        tax = None if taxonomy == "none" else Taxonomy.load(None if taxonomy == "default" else taxonomy)
        label_map = LabelMap.load(mapping, tax) if mapping is not None else None
        _writable_dir(output.parent if str(output.parent) else Path("."), "the import")
        summary = import_labelled(source, output, _fields(id_field, text_field, title_field), label_field,
                                  sub_field or None, time_field, label_map, unmapped or "error", tax, split, sheet, mask_pii)
    except ChuishaoError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(DataError(f"{exc.filename or output}: {exc.strerror or exc}; nothing was written"))
    if summary["unmapped_rows"]:
        listed = ", ".join(f"{k} ({v})" for k, v in summary["unmapped"].items())  # type: ignore[attr-defined]
        action = "made OTHER" if unmapped == "other" else "left out"
        typer.echo(f"chuishao: warning: {summary['unmapped_rows']} rows with unmapped labels {action}: {listed}", err=True)
    if summary["dropped_by_mapping"]:
        listed = ", ".join(f"{k} ({v})" for k, v in summary["dropped_by_mapping"].items())  # type: ignore[attr-defined]
        typer.echo(f"chuishao: left out by the mapping (DROP): {listed}", err=True)
    typer.echo(json.dumps(summary, ensure_ascii=False))


@app.command()
def check(
    data: Annotated[list[Path], typer.Argument(metavar="DATA...", help="labelled JSONL/CSV/XLSX/Parquet file(s) to train on")],
    test_data: Annotated[list[Path] | None, typer.Option(
        "--test", help="held-out labelled file(s): leakage (shared ids, same or near-same texts) is a problem")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole report as JSON on stdout")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the whole report as JSON here")] = None,
    taxonomy: Annotated[str, typer.Option("--taxonomy", help="default, none (any labels) or a taxonomy YAML")] = "default",
    min_examples: Annotated[int, typer.Option("--min-examples", min=1, help="warn about classes with fewer examples")] = 5,
    near: Annotated[float, typer.Option("--near", min=0.5, max=1.0, help="Jaccard of char 5-grams that makes a near copy")] = 0.9,
    label_field: Annotated[str, typer.Option("--label-field")] = "label",
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
) -> None:
    """Check labelled data before training: leakage into the test set (exact and near copies, shared ids),
    identical texts with two labels, empty texts, rare classes, taxonomy codes without an example, the
    label distribution. The report goes to stderr; exit 1 when a problem is found."""
    try:
        from chuishao.analysis.checks import check_files
        from chuishao.taxonomy import Taxonomy

        tax = None if taxonomy == "none" else Taxonomy.load(None if taxonomy == "default" else taxonomy)
        if output is not None:
            _writable_dir(output.parent if str(output.parent) else Path("."), "the report")
        report = check_files(data, test_data, _fields(id_field, text_field, title_field), label_field, tax,
                             min_examples, near)
        if output is not None:
            report.write_json(output)
    except ChuishaoError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(DataError(f"{exc.filename or output}: {exc.strerror or exc}; the report was not written"))
    typer.echo(report.text(), err=True)
    typer.echo(json.dumps(report.as_dict() if as_json else {"passed": report.passed, **report.figures},
                          ensure_ascii=False))
    if not report.passed:
        raise typer.Exit(1)


@app.command("suggest-labels")
def suggest_labels(
    pool: Annotated[Path, typer.Option("--pool", help="unlabelled messages: JSONL/CSV/XLSX/Parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the sheet to write: .xlsx (drop-downs) or .csv")],
    n: Annotated[int, typer.Option("-n", min=1, help="how many messages to pick")] = 200,
    model_dir: ModelOpt = None,
    labelled: Annotated[list[Path] | None, typer.Option(
        "--labelled", help="files already labelled (or sheets already sent out): their ids and texts are skipped")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="uncertainty: margin (1 - p1 + p2) or entropy")] = "margin",
    rare_weight: Annotated[float, typer.Option("--rare-weight", min=0.0, help="weight of the rare-topic bonus")] = 0.5,
    diversity: Annotated[float, typer.Option(
        "--diversity", min=0.0, max=1.0, help="0: the most uncertain only; higher: less alike messages (MMR)")] = 0.3,
    seed: Annotated[int, typer.Option("--seed", help="orders messages of equal score")] = 0,
    hints: Annotated[bool, typer.Option("--hints/--no-hints", help="fill the suggested column with the model's top 3")] = True,
    hide_hints: Annotated[bool, typer.Option("--hide-hints", help="XLSX: the suggested column hidden (can be shown)")] = False,
    sheet: Annotated[str | None, typer.Option("--sheet", help="worksheet of an .xlsx pool (default: the first)")] = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
) -> None:
    """Pick the unlabelled messages most worth labelling next (uncertain, rare topics first, unlike each
    other) and write a sheet an annotator fills: id, title, text, suggested, label, sub, note.
    Train on it with `chuishao train ... --sheets SHEET` (rows left without a label are skipped)."""
    try:
        from chuishao.analysis.label_sheet import write_sheet
        from chuishao.analysis.suggest import select
        from chuishao.io.records import read_records

        if strategy not in ("margin", "entropy"):
            raise DataError(f"--strategy must be margin or entropy, got {strategy!r}")
        if output.suffix.lower() not in (".csv", ".xlsx"):
            raise DataError(f"{output}: a labelling sheet is .csv or .xlsx")
        _writable_dir(output.parent if str(output.parent) else Path("."), "the sheet")
        started = time.perf_counter()
        fields = _fields(id_field, text_field, title_field)
        model = _load(model_dir, None, annotate=False)  # only the scores choose what to label
        records = list(read_records(pool, fields, sheet=sheet))
        known = [r for path in labelled or [] for r in read_records(path, fields)]
        chosen = select(model, records, n, labelled=known, strategy=strategy,  # type: ignore[arg-type]
                        rare_weight=rare_weight, diversity=diversity, seed=seed)
        write_sheet(output, chosen.picks, model.taxonomy, hints=hints, hide_hints=hide_hints)
    except (ChuishaoError, ValueError) as exc:
        _fail(exc)
    except OSError as exc:
        _fail(DataError(f"{exc.filename or output}: {exc.strerror or exc}; the sheet was not written"))
    figures = chosen.figures
    for problem in chosen.problems[:5]:
        typer.echo(f"chuishao: warning: unreadable pool row, not considered: {problem}", err=True)
    if len(chosen.problems) > 5:
        typer.echo(f"chuishao: warning: ... and {len(chosen.problems) - 5} more unreadable pool rows", err=True)
    skipped = ", ".join(f"{figures.get(k, 0)} {k.replace('_', ' ')}" for k in
                        ("unreadable", "not_classifiable", "already_labelled", "trained_on", "duplicates", "near_copies"))
    typer.echo(f"chuishao: {figures.get('picked', 0)} of {figures['pool_rows']} pool rows picked ({skipped}); "
               f"rarity from {figures.get('rarity_from', '-')}; wrote {output}", err=True)
    if len(chosen.picks) < n:
        typer.echo(f"chuishao: warning: only {len(chosen.picks)} eligible messages, {n} asked for", err=True)
    typer.echo(json.dumps({"output": str(output), "model": model.version, **figures,
                           "seconds": round(time.perf_counter() - started, 1)}, ensure_ascii=False))


@app.command()
def predict(
    text: Annotated[str | None, typer.Argument(help="the complaint text ('-' or nothing: read lines from stdin)")] = None,
    title: Annotated[str | None, typer.Option("--title")] = None,
    model_dir: ModelOpt = None,
    routing: RoutingOpt = None,
    gazetteer: GazetteerOpt = None,
) -> None:
    """Route one complaint (or each stdin line) and print the answer as JSON."""
    try:
        model = _load(model_dir, routing, gazetteer)
    except ChuishaoError as exc:
        _fail(exc)
    from_stdin = text in (None, "-")
    texts: list[str] = []
    problems: list[str | None] = []  # per stdin line: why what was read is not what was sent
    if from_stdin:  # a Windows console or an old export pipes GBK: read it as such, not as 'not Chinese'
        from chuishao.io.text import decode_line

        for line in sys.stdin.buffer:
            decoded, problem = decode_line(line.rstrip(b"\r\n"))
            texts.append(decoded)
            problems.append(problem)
    else:
        assert text is not None  # not from stdin: a text was given
        texts = [text]
    answers = model.route(texts, titles=[title] * len(texts))
    from chuishao.models.answer import RoutingAnswer

    for n, problem in enumerate(problems, start=1):
        if problem is not None:  # what was read is not what was sent: no answer for it
            answers[n - 1] = RoutingAnswer(error=f"line {n}: {problem}", model_version=model.version)
    for answer in answers:  # stdin: one JSON line per input line, however many there are
        typer.echo(answer.model_dump_json(indent=None if from_stdin else 2))
    if len(answers) == 1 and answers[0].error:
        raise typer.Exit(1)


def _overlaps(input: str, output: str) -> bool:
    """Whether the output is the input, holds it, or lies inside it (a Spark input is often a folder)."""
    def norm(path: str) -> str:
        return path.rstrip("/") if "://" in path else str(Path(path).resolve())

    src, dst = norm(input), norm(output)
    return src == dst or src.startswith(dst + "/") or dst.startswith(src + "/")


def _output_folder_usable(output: Path) -> None:
    """The folder the output (and its hidden .partial work folder) goes into can be made: said before any row is
    tagged, in the tool's words, not as an errno naming the hidden folder."""
    import os

    folder = output.parent
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"output {output}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK) or (parent == folder and not _can_write_in(folder)):
                raise DataError(f"output {output}: cannot write in {parent}")
            return


def _can_write_in(folder: Path) -> bool:
    """A file can be made here (os.access says yes to root on read-only or virtual file systems such as /proc)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _check_tag_paths(input: str, output: str, output_encoding: str | None, engine: str) -> None:
    """Mistakes that would otherwise surface only after every row was tagged."""
    import codecs

    from chuishao.extras import need
    from chuishao.io.formats import detect_format

    if engine == "local":  # said first: "would overwrite the input" would mislead (Spark's paths may be remote)
        if Path(input).is_dir():
            raise DataError(f"{input}: is a directory; give a file (the spark engine reads folders: --engine spark)")
        _output_folder_usable(Path(output))
    if _overlaps(input, output):  # Spark replaces its output folder: that must never be the input's
        raise DataError(f"output {output} would overwrite the input {input}")
    if Path(output).is_dir() and engine == "local":  # Spark writes a folder: a previous run's is replaced
        raise DataError(f"{output}: is a directory; give the output file's name (e.g. {Path(output) / 'tagged.jsonl'})")
    writer_module = {"parquet": "pyarrow", "xlsx": "openpyxl"}.get(detect_format(output))
    if writer_module is not None:  # not after every row was tagged
        need(writer_module)
    try:
        codecs.lookup(output_encoding or "utf-8")
    except LookupError:
        raise DataError(f"unknown --output-encoding {output_encoding!r}; e.g. utf-8, utf-8-sig or gbk") from None
    if output_encoding and detect_format(output) != "csv" and codecs.lookup(output_encoding).name != "utf-8":
        raise DataError(f"--output-encoding applies to CSV/TSV output only ({output} is written as "
                        f"{detect_format(output)}, in UTF-8 or binary)")


@app.command()
def tag(
    # text, not Path: Path would fold the '//' of hdfs://host/... and s3a://bucket/... for the Spark engine
    input: Annotated[str, typer.Argument(
        help="messages: .jsonl, .csv (UTF-8 or GBK/GB18030), .xlsx or .parquet (Spark: a file or folder)")],
    output: Annotated[str, typer.Option(
        "--output", "-o", help="file to write, format by extension: .jsonl .csv .tsv .xlsx .parquet")],
    model_dir: ModelOpt = None,
    routing: RoutingOpt = None,
    gazetteer: GazetteerOpt = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="messages per model call (memory grows with it)")] = 256,
    keep_columns: Annotated[bool, typer.Option("--keep-columns", help="carry every input column through to the output")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="processes tagging in parallel")] = 1,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="rows per checkpoint")] = 4_000,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run of the same command")] = False,
    encoding: Annotated[str, typer.Option(
        "--encoding", help="JSONL/CSV input encoding: auto, utf-8, gbk, gb18030, ...")] = "auto",
    output_encoding: Annotated[str | None, typer.Option(
        "--output-encoding", help="CSV/TSV output encoding (default: utf-8-sig for .csv, a BOM so that Excel "
                                  "reads it; utf-8 for .tsv); --output-encoding utf-8 writes .csv without BOM")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel input: the worksheet to read (default: the first)")] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="progress bar (default: on a terminal only)")] = None,
    engine: Annotated[str, typer.Option("--engine", help="local (this machine) or spark (see docs/batch.md)")] = "local",
    spark_master: Annotated[str | None, typer.Option("--spark-master", help="e.g. local[4]; default: spark-submit's")] = None,
) -> None:
    """Tag every row of a file; bad rows get an `error`, none is dropped. Prints a summary to stderr."""
    try:
        from chuishao.batch import TagInterrupted, TagOptions, tag_file

        fields = _fields(id_field, text_field, title_field)
        _check_tag_paths(input, output, output_encoding, engine)
        started = time.perf_counter()
        if engine == "spark":
            from chuishao.batch.spark import tag_spark

            if sheet is not None:
                raise typer.BadParameter("--sheet: the spark engine does not read Excel files")
            summary = tag_spark(input, output, model_dir, fields, keep_columns=keep_columns, master=spark_master,
                                encoding=encoding, taxonomy=_routing(routing), annotator=_annotator(gazetteer))
        elif engine == "local":
            model = _load(model_dir, routing, gazetteer)
            started = time.perf_counter()  # rows/s of the tagging, not of loading the model
            opts = TagOptions(fields=fields, batch_size=batch_size, chunk_size=chunk_size, workers=workers,
                              keep_columns=keep_columns, resume=resume, encoding=encoding,
                              output_encoding=output_encoding, sheet=sheet, progress=progress)
            summary = tag_file(model, Path(input), Path(output), options=opts)
        else:
            raise typer.BadParameter(f"--engine must be local or spark, not {engine!r}")
    except TagInterrupted as exc:
        typer.echo(f"chuishao: interrupted: {exc}", err=True)
        raise typer.Exit(130 if isinstance(exc.cause, KeyboardInterrupt) else 1) from None
    except KeyboardInterrupt:
        from chuishao.batch.workdir import workdir_for

        if engine == "local" and any(workdir_for(Path(output)).glob("chunk-*")):  # e.g. Ctrl-C twice as chunks finished
            typer.echo("chuishao: interrupted; finished chunks are kept: run the same command with --resume to continue",
                       err=True)
        else:
            typer.echo("chuishao: interrupted before the first chunk was finished; nothing kept", err=True)
        raise typer.Exit(130) from None
    except (ChuishaoError, OSError) as exc:
        _fail(exc)
    elapsed = time.perf_counter() - started
    typer.echo(json.dumps({"output": str(output), **summary.as_dict(), "seconds": round(elapsed, 2),
                           "rows_per_second": round((summary.rows - summary.resumed_rows) / elapsed, 1) if elapsed else None},
                          ensure_ascii=False), err=True)
    if summary.unwritable_chars:  # only an explicit --output-encoding can lack characters
        typer.echo(f"chuishao: warning: {summary.unwritable_chars} characters cannot be written in {output_encoding} "
                   f"and became '?' in {output}; --output-encoding utf-8-sig keeps them (Excel reads it)", err=True)


@app.command()
def events(
    input: Annotated[Path, typer.Argument(help="reports: .jsonl, .csv (UTF-8 or GBK/GB18030), .xlsx or .parquet")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="one row per report with its event: .jsonl .csv .tsv .xlsx .parquet")],
    model_dir: ModelOpt = None,
    routing: RoutingOpt = None,
    gazetteer: GazetteerOpt = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="events summary, biggest first: .jsonl or .csv")] = None,
    html_report: Annotated[Path | None, typer.Option("--html", help="self-contained HTML page of the events")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="events config YAML (keys as docs/events.md)")] = None,
    time_field: Annotated[str | None, typer.Option(
        "--time-field", help="column holding the report's time (none: no times)")] = None,
    timezone: Annotated[str, typer.Option(
        "--timezone", help="zone of times written without one, e.g. Asia/Shanghai (default UTC)")] = "UTC",
    place_field: Annotated[str | None, typer.Option(
        "--place-field", help="column holding the place key, or a JSON object with district/street/community; "
                              "rows without one: the place the text names (--gazetteer)")] = None,
    place_level: Annotated[str, typer.Option(
        "--place-level", help="place objects: key down to district|street|community")] = "street",
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="similarity at which two reports join (default 0.45)")] = None,
    window_days: Annotated[float | None, typer.Option(
        "--window-days", help="timed reports join within this many days (default 7)")] = None,
    whistle_size: Annotated[int | None, typer.Option(
        "--whistle-size", help="reports that make an event a whistle candidate (default 10)")] = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
    encoding: Annotated[str, typer.Option("--encoding", help="JSONL/CSV input encoding: auto, utf-8, gbk, ...")] = "auto",
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel input: the worksheet to read")] = None,
) -> None:
    """Group reports of the same problem (same topic, place and days) into events; flag whistle candidates.
    Every input row comes out with its event_id (bad rows: with their error). Prints the counts to stderr."""
    try:
        from chuishao.analysis.events import PLACE_LEVELS
        from chuishao.analysis.events_config import EventsConfig
        from chuishao.batch.events import EventsOptions, events_file, time_zone
        from chuishao.io.formats import detect_format

        config = EventsConfig.load(config_file, threshold=threshold, window_days=window_days, whistle_size=whistle_size)
        if place_level not in PLACE_LEVELS:
            raise typer.BadParameter(f"--place-level must be one of {', '.join(PLACE_LEVELS)}")
        time_zone(timezone)  # an unknown zone fails before the model loads
        for path in (output, summary, html_report):
            if path is not None and _overlaps(str(input), str(path)):
                raise DataError(f"{path} would overwrite the input {input}")
        _check_tag_paths(str(input), str(output), None, "local")
        if summary is not None and detect_format(summary) not in ("jsonl", "csv"):
            raise DataError(f"--summary {summary}: write the summary as .jsonl or .csv")
        model = _load(model_dir, routing, gazetteer)  # as tag: answers carry the jurisdiction, the rows' place
        opts = EventsOptions(fields=_fields(id_field, text_field, title_field), time_field=time_field or None,
                             place_field=place_field or None, place_level=place_level, encoding=encoding, sheet=sheet,
                             timezone=timezone)
        started = time.perf_counter()
        result = events_file(model, input, output, config, opts, summary_path=summary, html_path=html_report)
    except (ChuishaoError, OSError) as exc:
        _fail(exc)
    typer.echo(json.dumps({"output": str(output), **result.as_dict(),
                           "seconds": round(time.perf_counter() - started, 2)}, ensure_ascii=False), err=True)


@app.command()
def serve(
    model_dir: ModelOpt = None,
    routing: RoutingOpt = None,
    gazetteer: GazetteerOpt = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes (each loads the model)")] = 1,
    db_url: Annotated[str | None, typer.Option(
        "--db-url", help="feedback store URL (default: CHUISHAO_DB_URL or feedback.sqlite3 in the user data "
                         "directory)")] = None,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log")] = True,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the routing service (API, operator page at /, docs at /docs). Settings: CHUISHAO_* env, see docs/service.md."""
    import atexit
    import copy
    import os
    import shutil
    import tempfile

    try:
        import uvicorn.config

        from chuishao.models.persistence import read_manifest
        from chuishao.resources import default_model_dir
        from chuishao.serve import supervisor
        from chuishao.serve.feedback_store import FeedbackStore
        from chuishao.serve.id_key import key_of
        from chuishao.serve.settings import ServeSettings
        from chuishao.serve.verified_copy import keep_copy
    except ImportError as exc:
        _fail(RuntimeError(f"{exc}; install the service extra: pip install '.[serve]' in the chuishao checkout"))
    try:  # fail fast, before any worker starts
        read_manifest(model_dir or default_model_dir())
        _routing(routing)
        _annotator(gazetteer if gazetteer is not None else os.environ.get("CHUISHAO_GAZETTEER"))
    except ChuishaoError as exc:
        _fail(exc)
    # Settings travel by environment: every worker process builds the app from it.
    if model_dir is not None:
        # absolute, not resolved: a symlink (models/current -> v7) must stay one, so that a reload
        # after repointing it loads the new target
        os.environ["CHUISHAO_MODEL_DIR"] = str(model_dir.absolute())
    if routing is not None:
        os.environ["CHUISHAO_TAXONOMY"] = str(routing.absolute())
    if gazetteer is not None:
        os.environ["CHUISHAO_GAZETTEER"] = gazetteer if gazetteer.lower() == "none" else str(Path(gazetteer).absolute())
    if db_url is not None:
        os.environ["CHUISHAO_DB_URL"] = db_url
    settings = ServeSettings()
    # A verified copy of the model, private to this service: a worker that starts while the model
    # directory is broken or gone (uvicorn respawns a killed one) serves it instead of failing,
    # which would stop the whole service. Workers keep it up to date after each reload.
    copies = Path(tempfile.mkdtemp(prefix="chuishao-model-"))
    atexit.register(shutil.rmtree, copies, True)
    try:
        keep_copy(settings.model_dir or default_model_dir(), copies)
    except ChuishaoError as exc:
        _fail(exc)
    os.environ["CHUISHAO_MODEL_FALLBACK_DIR"] = str(copies)
    # The schema once, here: workers creating it together on a fresh SQLite file would race. The
    # message-id key too (made on first use), and ids an older release stored raw are masked.
    try:
        id_key = key_of(settings)
    except ChuishaoError as exc:
        _fail(exc)
    store = FeedbackStore(settings.db_url, strict=False, id_key=id_key)
    if store.up:
        _mask_stored_ids(store, reports=True)
    where = store.engine.url.render_as_string(hide_password=True)
    if store.engine.dialect.name == "sqlite" and store.engine.url.database:
        where = str(Path(store.engine.url.database).expanduser().absolute())
    typer.echo(f"chuishao: feedback store: {where}" + ("" if store.up else f" (unavailable: {store.error}; "
                                                         "classification works, feedback gets 503)"), err=True)
    store.close()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chuishao-prom-")
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["chuishao"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    # query strings in the access log are decoded and PII-masked (serve/logs.py)
    log_config.setdefault("filters", {})["mask_query"] = {"()": "chuishao.serve.logs.QueryStringMask"}
    log_config["handlers"]["access"]["filters"] = ["mask_query"]
    # With several workers SIGHUP reloads the model inside each of them (serve/supervisor.py): uvicorn's
    # own answer, replacing the workers, drops requests under load. A respawned worker gets
    # worker_start_timeout to load, not uvicorn's 5 s.
    supervisor.run("chuishao.serve.app:create_app", host=host, port=port, workers=workers, access_log=access_log,
                   log_level=log_level, log_config=log_config, timeout_worker_healthcheck=settings.worker_start_timeout)


def _mask_stored_ids(store: Any, reports: bool = False) -> None:
    """Ids stored raw by a release before id masking, rewritten once (FeedbackStore.mask_stored_ids); with
    ``reports``, those of the recent reports too (SimilarStore.mask_stored_ids, its tables made here once)."""
    from sqlalchemy.exc import SQLAlchemyError

    from chuishao.serve.similar_store import SimilarStore

    try:
        changed = store.mask_stored_ids()
        if reports:
            changed += SimilarStore(store.engine, id_key=store.id_key).mask_stored_ids()
    except SQLAlchemyError as exc:
        _fail(ChuishaoError(f"message ids with personal data stored by an older release could not be masked in "
                            f"{store.engine.url.render_as_string(hide_password=True)}: {exc.__class__.__name__}: "
                            f"{getattr(exc, 'orig', exc)}"))
    if changed:
        typer.echo(f"chuishao: {changed} message ids holding personal data were masked in the store", err=True)


feedback_app = typer.Typer(no_args_is_help=True, help="Operator feedback stored by the service.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write (chuishao train reads it)")],
    db_url: Annotated[str | None, typer.Option(
        "--db-url", help="default: CHUISHAO_DB_URL or feedback.sqlite3 in the user data directory")] = None,
    include_textless: Annotated[bool, typer.Option("--include-textless", help="also rows sent without text")] = False,
    conflicts: Annotated[Path | None, typer.Option(
        "--conflicts", help="JSONL listing corrections that contradict each other (one message id or one identical "
                            "text given different topics)")] = None,
) -> None:
    """Export the latest feedback per message as labelled training data (chuishao train --extra-data FILE).

    Contradicting corrections are reported: for one message id the newest is exported; for one identical
    text under several ids, only the newest correction is exported and the others are left out."""
    from chuishao.serve.feedback_store import FeedbackStore, export_training
    from chuishao.serve.id_key import key_of
    from chuishao.serve.settings import ServeSettings

    url = db_url or ServeSettings().db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        _fail(ChuishaoError(f"no feedback database at {url.removeprefix('sqlite:///')}"))
    settings = ServeSettings()
    try:
        store = FeedbackStore(url, id_key=key_of(settings))
    except ChuishaoError as exc:
        _fail(exc)
    try:
        _mask_stored_ids(store)
        summary = export_training(store, output, include_textless, conflicts)
    finally:
        store.close()
    if summary["conflicting_ids"] or summary["conflicting_texts"]:
        where = f" (listed in {conflicts})" if conflicts is not None else "; --conflicts FILE lists them"
        typer.echo(f"chuishao: warning: contradicting corrections{where}: {summary['conflicting_ids']} message ids were "
                   f"given different topics (the newest is exported); {summary['conflicting_texts']} identical texts "
                   f"were given different topics ({summary['left_out_conflicting']} older corrections left out)", err=True)
    typer.echo(json.dumps({"output": str(output), **summary}, ensure_ascii=False))


@feedback_app.command("id")
def feedback_id(ids: Annotated[list[str], typer.Argument(help="message ids as your system has them")]) -> None:
    """Print how each message id is stored and exported: as given, or, when it holds personal data,
    its masked form with a hash keyed by CHUISHAO_ID_KEY (or the key file), to find its corrections."""
    import unicodedata

    from chuishao.pipeline.privacy import pseudonymise_id
    from chuishao.serve.id_key import key_of
    from chuishao.serve.settings import ServeSettings

    try:
        key = key_of(ServeSettings())
    except ChuishaoError as exc:
        _fail(exc)
    for message_id in ids:
        typer.echo(pseudonymise_id(unicodedata.normalize("NFC", message_id), key))


model_app = typer.Typer(no_args_is_help=True, help="Model directories.")
app.add_typer(model_app, name="model")
app.add_typer(transformer_app, name="transformer")


@model_app.command("convert")
def model_convert(
    old_dir: Annotated[Path, typer.Argument(help="model directory saved with pickle (model.joblib)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="model directory to write, in the current format")],
) -> None:
    """Convert a model saved with pickle (model.joblib) into the current format (data only).

    This unpickles OLD_DIR/model.joblib, and unpickling can run any code: only convert models you trust.
    """
    try:
        from chuishao.models.legacy import convert

        _writable_dir(output, "the model")
        model = convert(old_dir, output)
    except ChuishaoError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(DataError(f"{exc.filename or output}: {exc.strerror or exc}; the model was not converted"))
    typer.echo(json.dumps({"model": str(output), "version": model.version, "labels": model.classes_}, ensure_ascii=False))


# ---- the model registry: list, add, compare, promote, rollback (chuishao/analysis) -----------
RegistryOpt = Annotated[Path | None, typer.Option(
    "--registry", help="registry folder (default: CHUISHAO_REGISTRY or ./chuishao-registry)")]
models_app = typer.Typer(no_args_is_help=True, help="The model registry: versioned models and the one in service.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per version")] = False,
) -> None:
    """Every version in the registry: created, labels, data fingerprint, held-out figures; * marks the current one."""
    from chuishao.analysis.registry import Registry, registry_path

    try:
        reg = Registry(registry_path(registry))
        current = reg.current()
        rows = [e.row(current) for e in reg.entries()]
    except ChuishaoError as exc:
        _fail(exc)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no models in {reg.root} (chuishao models add MODEL_DIR)", err=True)
        return
    typer.echo(f"  {'version':<44} {'created':<20} {'labels':>6} {'data':<16} {'macro_f1':>8} {'accuracy':>8}")
    for r in rows:
        typer.echo(f"{'*' if r['current'] else ' '} {r['version']:<44} {r['created'] or '':<20} {r['labels']:>6} "
                   f"{r['data_fingerprint'] or '-':<16} {r['heldout_macro_f1'] or '-':>8} {r['heldout_accuracy'] or '-':>8}")


@models_app.command("add")
def models_add(
    model_dir: Annotated[Path, typer.Argument(help="model directory to copy into the registry")],
    registry: RegistryOpt = None,
) -> None:
    """Copy a model directory into the registry, verified (checksums, loadable) before and after the copy."""
    from chuishao.analysis.registry import Registry, registry_path

    try:
        reg = Registry(registry_path(registry))
        version, added = reg.add(model_dir)
    except ChuishaoError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(DataError(f"{exc.filename or registry}: {exc.strerror or exc}; the model was not added"))
    typer.echo(json.dumps({"version": version, "added": added, "path": str(reg.path_of(version))}, ensure_ascii=False))


def _model_ref(ref: str, registry: Path | None) -> Path:
    """A model directory, or a version (or a unique part of one) in the registry."""
    from chuishao.analysis.registry import Registry, registry_path

    if Path(ref).is_dir():
        return Path(ref)
    reg = Registry(registry_path(registry))
    return reg.path_of(reg.resolve(ref))


@app.command()
def compare(
    model_a: Annotated[str, typer.Argument(metavar="A", help="the reference model: a directory or a registry version")],
    model_b: Annotated[str, typer.Argument(metavar="B", help="the model compared with it")],
    data: Annotated[Path, typer.Option("--data", help="labelled JSONL/CSV file both are scored on")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write compare.json, changed.csv and summary.md here")] = None,
    resamples: Annotated[int, typer.Option("--resamples", min=100, help="paired bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
    registry: RegistryOpt = None,
) -> None:
    """Compare model B with model A on labelled data: per-class F1 deltas, paired bootstrap intervals of the
    macro-F1 and accuracy differences, McNemar's test, the messages whose answer changed (texts masked)."""
    try:
        from chuishao.analysis.compare import compare_models, summary_text, write_comparison
        from chuishao.models.persistence import load_model
        from chuishao.training.data import read_labelled

        if output is not None:
            _writable_dir(output, "the comparison")
        a, b = load_model(_model_ref(model_a, registry)), load_model(_model_ref(model_b, registry))
        result = compare_models(a, b, read_labelled(data), resamples=resamples, seed=seed)
    except ChuishaoError as exc:
        _fail(exc)
    typer.echo(summary_text(result, data.name), err=True)
    typer.echo(json.dumps(result.as_dict(with_changed=False), ensure_ascii=False))
    if output is not None:
        write_comparison(result, output, data.name)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="registry version (or a unique part of it) to put in service")],
    registry: RegistryOpt = None,
    gate_data: Annotated[Path | None, typer.Option(
        "--gate-data", help="labelled gate set: refuse a model significantly worse on it than the one in service")] = None,
    gates: Annotated[Path | None, typer.Option("--gates", help="gate policy YAML (see docs/analysts.md)")] = None,
    force: Annotated[bool, typer.Option("--force", help="promote even if a gate refuses (needs --reason; logged)")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why: kept in the registry's history.jsonl")] = None,
) -> None:
    """Put a registry version in service (repoints REGISTRY/current atomically) once the promotion gates pass."""
    from chuishao.analysis.gates import GatePolicy, check_promotion
    from chuishao.analysis.registry import Registry, registry_path

    try:
        if force and not reason:
            raise DataError("--force needs --reason: say why the gates are overridden (it is logged)")
        reg = Registry(registry_path(registry))
        target = reg.resolve(version)
        current = reg.current()
        if current == target:
            typer.echo(f"chuishao: {target} is already in service", err=True)
            return
        report = check_promotion(reg.path_of(current) if current else None, reg.path_of(target),
                                 gate_data=gate_data, policy=GatePolicy.load(gates))
        for check in report.checks:
            mark = "ok" if check.passed else ("REFUSED" if check.enforced else "warning")
            typer.echo(f"gate {check.name}: {mark}: {check.detail}", err=True)
        if not report.passed and not force:
            typer.echo(f"chuishao: error: {target} not promoted, the gates refuse it ({report.reason()}); "
                       f"--force --reason TEXT overrides", err=True)
            raise typer.Exit(1)
        record = reg.promote(target, gates=report.as_dict(), forced=force and not report.passed, reason=reason)
    except ChuishaoError as exc:
        _fail(exc)
    if record["forced"]:
        typer.echo(f"chuishao: warning: gates overridden with --force: {reason}", err=True)
    typer.echo(json.dumps({k: record[k] for k in ("action", "from", "to", "forced", "reason")}, ensure_ascii=False))


@app.command()
def rollback(
    registry: RegistryOpt = None,
    reason: Annotated[str | None, typer.Option("--reason", help="why: kept in the registry's history.jsonl")] = None,
) -> None:
    """Put back the version that served before the current one (repoints REGISTRY/current atomically)."""
    from chuishao.analysis.registry import Registry, registry_path

    try:
        record = Registry(registry_path(registry)).rollback(reason)
    except ChuishaoError as exc:
        _fail(exc)
    typer.echo(json.dumps({k: record[k] for k in ("action", "from", "to", "reason")}, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
