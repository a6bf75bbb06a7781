"""File formats and containers: JSON lines, JSON lists, CSV/TSV, Parquet, ``datasets`` folders, gzip.

Each container yields ``(location, record dict)`` pairs for the schema readers of :mod:`balpm.data.records`; errors
in the container itself (bad bytes, malformed JSON or CSV, nesting too deep) are located here.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from balpm.data.pool import PoolFormatError, _Loc



_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _deepest(text: str) -> tuple[int, list]:
    """(depth, path) of the first deepest point of a JSON text, for a located 'nested too deeply' error.

    ``path`` holds the keys and list indices (at most three) leading to that point, outermost first. Run only
    after the JSON parser gave up (RecursionError), so a slow scan costs nothing on good files.
    """
    stack: list[list] = []  # [is_object, current key or index, expecting a key]
    best, path = 0, []
    for m in _JSON_TOKEN.finditer(text):
        t = m.group()
        c = t[0]
        if c in "[{":
            stack.append([c == "{", None if c == "{" else 0, c == "{"])
            if len(stack) > best:
                best = len(stack)
                path = [f[1] for f in stack[: min(3, len(stack) - 1)]]
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == ",":
            if stack:
                top = stack[-1]
                if top[0]:
                    top[2] = True
                else:
                    top[1] += 1
        elif stack and stack[-1][0] and stack[-1][2]:  # an object key
            try:
                stack[-1][1] = json.loads(t)
            except ValueError:
                stack[-1][1] = t[1:-1]
            stack[-1][2] = False
    return best, path


def _too_deep(loc: _Loc, depth: int, path: list, above: int) -> PoolFormatError:
    """The located error for JSON nested deeper than the parser goes; ``above`` = levels above a record's fields."""
    fld = path[above - 1] if len(path) >= above and isinstance(path[above - 1], str) else None
    return loc.error(fld, f"nested {depth - above} levels deep: too deeply nested for the JSON reader")


def _decode_line(raw: bytes, loc: _Loc) -> dict:
    """Parse one JSON line; locate non-UTF-8 bytes in the field that holds them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        text = raw.decode("utf-8", "surrogateescape")
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise loc.error(None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
        fld = _find_bad_field(obj)
        raise loc.error(fld, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise loc.error(None, f"malformed JSON: {e}") from None
    except RecursionError:
        raise _too_deep(loc, *_deepest(text), above=1) from None
    if not isinstance(obj, dict):
        raise loc.error(None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _find_bad_field(obj: Any, prefix: str = "") -> str | None:
    """The dotted name of the first string (or key) holding a lone surrogate (None when too deep to tell)."""
    try:
        return _find_bad_field_in(obj, prefix)
    except RecursionError:
        return None


def _find_bad_field_in(obj: Any, prefix: str) -> str | None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(k, str) and not _utf8_ok(k):
                return name
            found = _find_bad_field_in(v, name)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _find_bad_field_in(v, f"{prefix}[{i}]")
            if found is not None:
                return found
    elif isinstance(obj, str) and not _utf8_ok(obj):
        return prefix or None
    return None


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PoolFormatError(path, None, None, f"cannot read: {e.strerror or e}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise PoolFormatError(path, None, None, f"broken gzip file: {e}") from None
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        raise PoolFormatError(path, None, None, "UTF-32 text: save the file as UTF-8")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and b"\x00" in data[:2]):
        raise PoolFormatError(path, None, None, "UTF-16 text (or another encoding with NUL bytes): save it as UTF-8")
    if data[:3] == b"\xef\xbb\xbf":  # a UTF-8 byte order mark (Excel, Notepad): not part of the data
        data = data[3:]
    return data


def _iter_jsonl(path: Path, data: bytes) -> Iterator[tuple[_Loc, dict]]:
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        loc = _Loc(str(path), n)
        yield loc, _decode_line(raw, loc)


def _iter_json_list(path: Path, data: bytes) -> Iterator[tuple[_Loc, dict]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        text = data.decode("utf-8", "surrogateescape")
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise PoolFormatError(path, line, None, f"not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
        if isinstance(obj, list):
            for i, rec in enumerate(obj, start=1):
                fld = _find_bad_field(rec)
                if fld is not None:
                    raise PoolFormatError(path, i, fld, f"not valid UTF-8 (byte 0x{data[e.start]:02x})")
        raise PoolFormatError(path, line, None, f"not valid UTF-8 (byte 0x{data[e.start]:02x})")
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise PoolFormatError(path, getattr(e, "lineno", None), None, f"malformed JSON: {e}") from None
    except RecursionError:
        depth, where = _deepest(text)
        wrapped = bool(where) and isinstance(where[0], str)  # {"data": [...]}
        i = where[1] if wrapped and len(where) > 1 else (where[0] if where and not wrapped else None)
        loc = _Loc(str(path), i + 1 if isinstance(i, int) else None)
        raise _too_deep(loc, depth, where, above=3 if wrapped else 2) from None
    if isinstance(obj, dict):
        for key in ("data", "pairs", "rows", "records"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise PoolFormatError(path, None, None, f"expected a JSON list of objects, got {type(obj).__name__}")
    for i, rec in enumerate(obj, start=1):
        loc = _Loc(str(path), i)
        if not isinstance(rec, dict):
            raise loc.error(None, f"expected a JSON object, got {type(rec).__name__}")
        yield loc, rec


def _iter_frame(path: Path | str, df: pd.DataFrame) -> Iterator[tuple[_Loc, dict]]:
    for i, rec in enumerate(df.to_dict("records"), start=1):
        yield _Loc(str(path), i), rec


def _csv_rows(path: Path, text: str, sep: str) -> Iterator[tuple[int, list[str]]]:
    """(data row number, values) of every non-blank CSV record after the header; csv errors located."""
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # a long completion is not an error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    n = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise PoolFormatError(
                path, n if n else None, None,
                f"malformed CSV (record ending at line {reader.line_num} of the file): {e}; a double quote inside a "
                "quoted text must be doubled",
            ) from None
        if not values:  # a blank line
            continue
        yield n, values
        n += 1


def _unquoted_comma_field(values: list[str], names: list[str]) -> str | None:
    """The column whose text most likely held the unquoted separators of a row with too many values, or None.

    In prose a comma is followed by a space, so a value that starts with a space is probably the tail of the
    value before it. Only when exactly the surplus number of values does so, all in one run, is a field named.
    """
    extra = len(values) - len(names)
    tails = [i for i in range(1, len(values)) if values[i][:1].isspace()]
    if len(tails) != extra or tails != list(range(tails[0], tails[0] + extra)):
        return None
    return names[tails[0] - 1]


def _iter_csv(path: Path, data: bytes, sep: str) -> Iterator[tuple[_Loc, dict]]:
    """Records of a CSV/TSV file, with its shape checked row by row.

    The header names the columns: a column without a name, or a name given twice, is an error (never a silent
    ``Unnamed: 4`` or ``label.1``). Every row must hold one value per named column; empty values past the last
    named column are trailing separators (spreadsheet exports end every row in one) and are ignored, anything
    else there is an error naming the row, never a silent shift. Rows whose values are all blank are skipped.
    Values are kept as text (an empty label is unlabelled). Line numbers are data rows (header not counted).
    """
    try:
        text = data.decode("utf-8")
        bad: UnicodeDecodeError | None = None
    except UnicodeDecodeError as e:
        bad = e
        text = data.decode("utf-8", "surrogateescape")  # bad bytes become lone surrogates, found per cell below
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark (Excel writes one)
        text = text[1:]
    rows = _csv_rows(path, text, sep)
    first = next(rows, None)
    if first is None:
        raise PoolFormatError(path, None, None, "empty CSV file (no header)")
    header = [h.strip() for h in first[1]]
    while header and not header[-1]:
        header.pop()
    where: dict[str, int] = {}
    for k, name in enumerate(header, start=1):
        if not name:
            raise PoolFormatError(path, None, None, f"header: column {k} has no name")
        if name in where:
            raise PoolFormatError(path, None, name,
                                  f"header names column {name!r} twice (columns {where[name]} and {k})")
        where[name] = k
    if not header:
        raise PoolFormatError(path, None, None, "header names no columns")
    if len(header) == 1:  # another separator: "prompt;chosen;rejected" is one column to a comma reader
        other = next((c for c in (";", "|", ",", "\t") if c != sep and c in header[0]), None)
        if other is not None:
            raise PoolFormatError(
                path, None, None,
                f"the header is one column {header[0][:60]!r}: separated by {other!r}? balpm reads ',' in .csv and "
                "tab in .tsv files",
            )
    if bad is not None and not all(_utf8_ok(h) for h in header):
        raise PoolFormatError(path, None, None, f"header: not valid UTF-8 (byte 0x{data[bad.start]:02x})")
    width = len(header)
    what = "comma" if sep == "," else "tab"
    for i, values in rows:
        loc = _Loc(str(path), i)
        if bad is not None:
            for k, v in enumerate(values):
                if not _utf8_ok(v):
                    fld = header[k] if k < width else None
                    raise loc.error(fld, f"not valid UTF-8 (byte 0x{data[bad.start]:02x})")
        if all(not v.strip() for v in values):
            continue
        if len(values) < width:
            raise loc.error(
                header[len(values)],
                f"missing: the row has {len(values)} values, the header names {width} columns ({', '.join(header)})",
            )
        if len(values) > width and any(v.strip() for v in values[width:]):
            guess = _unquoted_comma_field(values, header)
            hint = (f"an unquoted {what} in this text? " if guess else f"an unquoted {what} in a text? ") + \
                'put texts that hold one in double quotes'
            if guess is None:
                surplus = next(k for k in range(width, len(values)) if values[k].strip())
                raise loc.error(
                    None,
                    f"the row has {len(values)} values, the header names {width} columns ({', '.join(header)}); "
                    f"column {surplus + 1} has no name but holds {values[surplus][:40]!r}: {hint}",
                )
            raise loc.error(guess, f"the row has {len(values)} values, the header names {width}: {hint}")
        yield loc, dict(zip(header, values))


def _records_from_file(path: Path, fmt: str | None) -> Iterator[tuple[_Loc, dict]]:
    name = path.name.lower()
    kind = fmt
    if kind is None:
        stem = name[:-3] if name.endswith(".gz") else name
        if stem.endswith((".jsonl", ".ndjson", ".jsonlines")):
            kind = "jsonl"
        elif stem.endswith(".json"):
            kind = "json"
        elif stem.endswith(".csv"):
            kind = "csv"
        elif stem.endswith(".tsv"):
            kind = "tsv"
        elif stem.endswith((".parquet", ".pq")):
            kind = "parquet"
        else:
            raise PoolFormatError(path, None, None, "unknown file type (expected .jsonl, .json, .csv, .tsv, .parquet)")
    if kind == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise PoolFormatError(path, None, None, f"cannot read Parquet: {e}") from None
        return _iter_frame(path, df)
    data = _read_bytes(path)
    if kind in ("csv", "tsv"):
        return _iter_csv(path, data, "," if kind == "csv" else "\t")
    if kind == "json":
        head = data.lstrip()[:1]
        kind = "jsonl" if head == b"{" and _looks_like_jsonl(data) else "json_list"
    if kind == "jsonl":
        return _iter_jsonl(path, data)
    if kind == "json_list":
        return _iter_json_list(path, data)
    raise PoolFormatError(path, None, None, f"unknown format {fmt!r} (jsonl, json, csv, tsv, parquet)")


def _looks_like_jsonl(data: bytes) -> bool:
    """A ``.json`` file with one object per line (summarize-from-feedback batches are named ``*.json``)."""
    first = data.lstrip().split(b"\n", 1)[0]
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _is_hf_disk(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file()
        or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def _hf_records(ds: Any, where: str, source: str) -> list[tuple[str, Iterator[tuple[_Loc, dict]]]]:
    """(source, records) per split of a ``datasets`` Dataset or DatasetDict; errors are located at ``where``."""
    if isinstance(getattr(ds, "column_names", None), dict):  # a DatasetDict
        return [(f"{source}:{sp}", _iter_frame(f"{where}:{sp}", ds[sp].to_pandas())) for sp in ds.keys()]
    return [(source, _iter_frame(where, ds.to_pandas()))]


_DIR_EXTENSIONS = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz", ".csv", ".tsv", ".parquet")
