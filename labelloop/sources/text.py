"""Import text from CSV or JSONL, with an optional label column."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from labelloop.exceptions import ImportDataError
from labelloop.sources.base import ImportReport, store_imported
from labelloop.store import ItemIn, Store

__all__ = ["read_records", "import_text_file"]


def read_records(path: Path, report: ImportReport) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record); unreadable rows are reported and skipped."""
    suffix = path.suffix.lower()
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ImportDataError(f"{path}: cannot open ({exc.strerror})") from exc
    with handle:
        if suffix in (".jsonl", ".ndjson", ".json"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    report.warn(f"{path}:{number}: not valid JSON ({exc.msg}); skipped")
                    continue
                if not isinstance(record, dict):
                    report.warn(f"{path}:{number}: expected a JSON object, got {type(record).__name__}; skipped")
                    continue
                yield number, record
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            try:
                for record in reader:
                    if None in record:
                        report.warn(f"{path}:{reader.line_num}: more fields than the header has; skipped")
                        continue
                    yield reader.line_num, record
            except (csv.Error, UnicodeDecodeError) as exc:
                report.warn(f"{path}:{reader.line_num}: unreadable row ({exc}); the rest of the file is skipped")
        else:
            raise ImportDataError(f"{path}: unknown text file type {suffix!r}; expected .csv, .tsv or .jsonl")


def import_text_file(
    store: Store,
    dataset: str,
    classes: list[str],
    path: Path,
    name: str,
    text_field: str = "text",
    label_field: str | None = None,
    id_field: str | None = None,
    run_id: str | None = None,
) -> ImportReport:
    """Import one text item per record; known class names in ``label_field`` become gold labels."""
    if not path.is_file():
        raise ImportDataError(f"{path}: text file not found")
    report = ImportReport(source=name)
    provenance = store.add_provenance("import", name, uri=str(path.resolve()), run_id=run_id)
    items: list[ItemIn] = []
    labels: list[int | None] = []
    try:
        for number, record in read_records(path, report):
            text = record.get(text_field)
            if not isinstance(text, str) or not text.strip():
                report.warn(f"{path}:{number}: no text in field {text_field!r}; skipped")
                continue
            label = None
            if label_field:
                raw = record.get(label_field)
                if raw not in (None, ""):
                    if str(raw) in classes:
                        label = classes.index(str(raw))
                    else:
                        report.warnings.append(
                            f"{path}:{number}: label {raw!r} is not a class ({', '.join(classes)}); imported unlabeled"
                        )
            external = str(record[id_field]) if id_field and record.get(id_field) not in (None, "") else f"{name}:{number}"
            items.append(ItemIn(modality="text", text=" ".join(text.split()), external_id=external, meta={"line": number}))
            labels.append(label)
    except UnicodeDecodeError as exc:
        report.warn(f"{path}: not UTF-8 text ({exc.reason}); rows after the fault are skipped")
    return store_imported(store, dataset, items, labels, report, provenance, run_id)
