"""The `whistle` command: train / test / predict / tag (verbs in the style of fastText)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from whistle.errors import WhistleError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sort Chinese resident complaints into the 15 whistle topics and route them.")

ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", help="model directory (default: the bundled model)")]
IdField = Annotated[str, typer.Option("--id-field", help="column/field holding the message id")]
TextField = Annotated[str, typer.Option("--text-field", help="column/field holding the message text")]
TitleField = Annotated[str, typer.Option("--title-field", help="column/field holding the title ('' for none)")]


def _fail(exc: Exception) -> None:
    typer.echo(f"whistle: error: {exc}", err=True)
    raise typer.Exit(2)


def _fields(id_field: str, text_field: str, title_field: str):  # noqa: ANN202
    from whistle.io.records import FieldMap

    return FieldMap(id=id_field, text=text_field, title=title_field or None)


def _taxonomy(value: str):  # noqa: ANN202
    from whistle.taxonomy import Taxonomy

    if value == "none":
        return None
    return Taxonomy.load(None if value == "default" else value)


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="labelled JSONL/CSV file(s) with text, optional title, and a label")],
    output: Annotated[Path, typer.Option("--output", "-o", help="model directory to write")],
    label_field: Annotated[str, typer.Option("--label-field")] = "label",
    taxonomy: Annotated[str, typer.Option("--taxonomy", help="taxonomy YAML, 'default' (bundled whistle-15) or 'none'")] = "default",
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML/JSON config (see whistle.config)")] = None,
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="unlabelled messages (JSONL) for vocabulary; also the texts of --extra-labels")] = None,
    extra_labels: Annotated[Optional[list[Path]], typer.Option("--extra-labels", help="id,label,sub CSV joined with --corpus")] = None,
    exclude: Annotated[Optional[list[Path]], typer.Option("--exclude", help="held-out files whose ids are never used")] = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
) -> None:
    """Train a model and save it to a directory."""
    try:
        from whistle.config import WhistleConfig
        from whistle.models.persistence import save_model
        from whistle.training.train import TrainRequest
        from whistle.training.train import train as run_train

        req = TrainRequest(
            data=list(data), taxonomy=_taxonomy(taxonomy), config=WhistleConfig.load(config),
            label_field=label_field, fields=_fields(id_field, text_field, title_field),
            extra_labels=extra_labels, corpus=corpus, exclude=exclude,
        )
        model = run_train(req)
        save_model(model, output)
    except (WhistleError, ValueError) as exc:
        _fail(exc)
    summary = {"model": str(output), "version": model.version, "labels": model.classes_, **model.heldout_,
               "training_rows": model.metadata["training_rows"], "train_seconds": model.metadata["train_seconds"]}
    typer.echo(json.dumps(summary, ensure_ascii=False))


@app.command()
def test(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    data: Annotated[Path, typer.Argument(help="labelled JSONL/CSV file")],
    label_field: Annotated[str, typer.Option("--label-field")] = "label",
    report: Annotated[Optional[Path], typer.Option("--output", "-o", help="write a report (table, confusion matrix) here")] = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
) -> None:
    """Evaluate a model on labelled data: prints one JSON line of figures."""
    try:
        from whistle.models.persistence import load_model
        from whistle.training.data import read_labelled
        from whistle.training.evaluate import evaluate, write_report

        model = load_model(model_dir)
        labelled = read_labelled(data, label_field, _fields(id_field, text_field, title_field))
        metrics = evaluate(model, labelled)
        metrics["model_version"] = model.version
        if report is not None:
            write_report(metrics, report, title=f"{model.version} on {data.name}")
    except WhistleError as exc:
        _fail(exc)
    shown = {k: v for k, v in metrics.items() if k not in ("confusion", "labels")}
    typer.echo(json.dumps(shown, ensure_ascii=False))


@app.command()
def predict(
    text: Annotated[Optional[str], typer.Argument(help="the complaint text ('-' or nothing: read lines from stdin)")] = None,
    title: Annotated[Optional[str], typer.Option("--title")] = None,
    model_dir: ModelOpt = None,
) -> None:
    """Route one complaint (or each stdin line) and print the answer as JSON."""
    try:
        from whistle.models.persistence import load_model

        model = load_model(model_dir)
    except WhistleError as exc:
        _fail(exc)
    texts = [text] if text not in (None, "-") else [line.rstrip("\n") for line in sys.stdin]
    answers = model.route(texts, [title] * len(texts))
    for answer in answers:
        typer.echo(answer.model_dump_json(indent=None if len(answers) > 1 else 2))
    if len(answers) == 1 and answers[0].error:
        raise typer.Exit(1)


@app.command()
def tag(
    input: Annotated[Path, typer.Argument(help="JSONL or CSV file of messages")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write (one record per input row)")],
    model_dir: ModelOpt = None,
    id_field: IdField = "id",
    text_field: TextField = "text",
    title_field: TitleField = "title",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1024,
) -> None:
    """Tag every row of a file; bad rows get an `error`, none is dropped."""
    try:
        from whistle.models.persistence import load_model
        from whistle.tagging import tag_file

        model = load_model(model_dir)
        started = time.perf_counter()
        summary = tag_file(model, input, output, _fields(id_field, text_field, title_field), batch_size)
    except WhistleError as exc:
        _fail(exc)
    elapsed = time.perf_counter() - started
    typer.echo(json.dumps({"output": str(output), **summary.as_dict(), "seconds": round(elapsed, 2),
                           "rows_per_second": round(summary.rows / elapsed, 1) if elapsed else None}, ensure_ascii=False), err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
