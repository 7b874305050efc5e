"""`medui notes`: entities, assertions, codes and medication rows from clinical notes; `notes synth` writes
synthetic training notes."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from medui.cli.common import CliError, Result, cli_actor, table


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "notes", parents=[json_parent], help="clinical note extraction (or `notes synth` for training notes)",
        description="Reads UTF-8 .txt notes (also .docx, or PDF with a text layer; .jsonl / .csv batches with a `text` "
        "column, one note per row, optionally a `patient` column) and prints "
        "problems with assertion and ICD-10-CM candidates, medications with DrugBank/MeSH codes and their dose, route "
        "and frequency, tests and procedures. `notes synth --n N --seed S --out FILE.jsonl` writes synthetic notes "
        "with gold entity spans instead.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="note files, or `synth` to generate training notes")
    parser.add_argument("--save", action="store_true", help="store each result in the database (needs --patient; a batch row's own patient wins)")
    parser.add_argument("--patient", metavar="ID", help="patient identifier the saved results belong to")
    parser.add_argument("--decode-errors", choices=["strict", "replace"], default="strict",
                        help="non-UTF-8 bytes: refuse the file (strict, default) or read them as U+FFFD (replace)")
    parser.add_argument("--n", type=int, default=100, help="synth: how many notes (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="synth: random seed (default 0)")
    parser.add_argument("--out", metavar="FILE", help="synth: the JSONL file to write")
    parser.set_defaults(handler=_run)


def _documents(paths: list[str], replace: bool) -> list[Any]:
    """Every note in the given files, in order; an unusable file or row is a Document with `error` set."""
    from medui.notes.documents import Document, NotUtf8, read_upload
    from medui.uploads import UploadRejected

    docs = []
    for name in paths:
        try:
            docs += read_upload(Path(name).read_bytes(), name, replace_errors=replace)
        except OSError as exc:
            docs.append(Document(name, error=f"cannot read it: {exc.strerror or exc}"))
        except NotUtf8:
            docs.append(Document(name, error="not UTF-8 text (pass --decode-errors replace to read it with U+FFFD "
                                             "replacement characters)"))
        except UploadRejected as exc:
            docs.append(Document(name, error=str(exc)))
    return docs


def _synth(args: argparse.Namespace) -> Result:
    from medui.notes.synth import main_synth

    if len(args.paths) > 1 or not args.out:
        raise CliError("usage: notes synth --n N --seed S --out FILE.jsonl")
    if args.n < 1:
        raise CliError(f"--n must be at least 1, got {args.n}")
    main_synth(args.n, args.seed, args.out)
    return Result({"out": args.out, "n": args.n, "seed": args.seed}, f"wrote {args.n} synthetic notes to {args.out}")


def _summary(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"{result['source']}: error: {result['error']}"
    rows = [{"label": e["label"], "text": e["text"].replace("\n", " ")[:40], "assertion": e["assertion"] or "",
             "section": e["section"] or "", "code": e["codes"][0]["code"] if e["codes"] else ""}
            for e in result["entities"]]
    head = (f"{result['source']}: {len(result['entities'])} entities, {len(result['medications'])} medication rows "
            f"({result['chars_processed']:,} of {result['chars_total']:,} characters, "
            f"model {result['model']['name']} v{result['model']['version']})")
    return head + "\n" + table(rows, ["label", "text", "assertion", "section", "code"])


def _run(args: argparse.Namespace) -> Result:
    if args.paths[0] == "synth":
        return _synth(args)
    if args.save and not args.patient:
        raise CliError("--save needs --patient ID")
    from medui.notes.extract import check_text, iter_extract, load_model

    docs = [d if d.error or not check_text(d.text) else replace(d, error=check_text(d.text))
            for d in _documents(args.paths, args.decode_errors == "replace")]
    results: list[dict[str, Any]] = [{"source": d.source, "error": d.error} for d in docs]
    good = [(i, d) for i, d in enumerate(docs) if not d.error]
    if good:
        ner = load_model()  # RegistryError (one line) when no production notes-ner is registered
        done = iter_extract([d.text for _, d in good], model=ner, sources=[d.source for _, d in good])
        for (i, doc), result in zip(good, done):
            results[i] = result
            if args.save:
                _save(result, doc.text, doc.patient or args.patient)
    for result in results:
        if "error" in result:
            print(f"error: {result['source']}: {result['error']}", file=sys.stderr)
    failed = any("error" in r for r in results)
    return Result(results, "\n\n".join(_summary(r) for r in results), exit_code=1 if failed else 0)


def _save(result: dict[str, Any], text: str, patient: str) -> None:
    from medui import records

    analysis_id = records.save_analysis("notes", {**result, "text": text}, created_by=cli_actor(),
                                        input_sha256=records.input_hash(text.encode("utf-8")), patient=patient,
                                        model_name=result["model"]["name"], model_version=result["model"]["version"])
    # No patient identifier here: stderr of a scheduled run ends up in the system journal (a log).
    print(f"saved {result['source']} as analysis {analysis_id}", file=sys.stderr)
