"""Containers: JSON lines, JSON lists, CSV/TSV shapes, encodings, nesting, missing labels (balpm.data.formats)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balpm.data import PoolFormatError, load_pool, summarize

from data_helpers import GOOD, HEADER, QA_RECORD, assert_located, write_csv, write_lines


def test_readers_agree(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p1", "completion_a": "a1", "completion_b": "b1", "label": 1, "topic": "x"},
        {"prompt": "p2", "completion_a": "a2", "completion_b": "b2", "label": None, "topic": "y"},
        {"prompt": "p2", "completion_a": "a3", "completion_b": "b3", "label": 0, "topic": "z"},
    ]
    df = pd.DataFrame(rows)
    df["label"] = df["label"].astype("Int8")
    paths = [write_lines(tmp_path / "p.jsonl", rows), tmp_path / "p.csv", tmp_path / "p.parquet", tmp_path / "p.json"]
    df.to_csv(paths[1], index=False)
    df.to_parquet(paths[2])
    paths[3].write_text(json.dumps(rows), encoding="utf-8")
    for path in paths:
        pool = load_pool(path)
        assert pool.labels.tolist()[0] == 1.0 and np.isnan(pool.labels[1]) and pool.labels[2] == 0.0, path
        assert pool.pairs["completion_a"].tolist() == ["a1", "a2", "a3"]
        assert pool.pairs["topic"].tolist() == ["x", "y", "z"]
        assert pool.pairs["group"].iloc[1] == pool.pairs["group"].iloc[2] != pool.pairs["group"].iloc[0]
        assert pool.pairs["source"].iloc[0] == path.name
    s = summarize(load_pool(paths[0]))
    assert (s["pairs"], s["labelled"], s["unlabelled"], s["a_preferred"]) == (3, 2, 1, 1)
    assert (s["repeated_prompt_groups"], s["pairs_in_repeated_groups"]) == (1, 2)
    no_label = write_lines(tmp_path / "u.jsonl", [{k: v for k, v in r.items() if k != "label"} for r in rows])
    assert load_pool(no_label).pairs["label"].isna().all()


def test_non_utf8_bytes(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b'{"prompt": "p", "completion_a": "a", "completion_b": "b"}\n'
                  b'{"prompt": "p", "completion_a": "caf\xe9", "completion_b": "b"}\n')
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.line, e.value.field) == (2, "completion_a") and "UTF-8" in str(e.value)
    c = tmp_path / "bad.csv"
    c.write_bytes(b"prompt,completion_a,completion_b\np,a,b\nq,a,\xff\xfe\n")
    with pytest.raises(PoolFormatError) as e:
        load_pool(c)
    assert (e.value.path, e.value.line, e.value.field) == (str(c), 2, "completion_b")


def test_bad_csv_and_json_list(tmp_path: Path) -> None:
    c = tmp_path / "p.csv"
    c.write_text("prompt,completion_a,completion_b,label\np,a,b,1\nq,a,b,0\nr,a,b,5\n", encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(c)
    assert (e.value.line, e.value.field) == (3, "label")
    c.write_text("prompt,completion_a,completion_b\np,a,b\n,a,b\n", encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(c)
    assert (e.value.line, e.value.field) == (2, "prompt")
    j = tmp_path / "p.json"
    j.write_text(json.dumps([GOOD, GOOD | {"prompt": "q", "completion_a": None}]), encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(j)
    assert (e.value.path, e.value.line, e.value.field) == (str(j), 2, "completion_a")


def test_csv_trailing_comma_on_every_row_is_read_unshifted(tmp_path: Path) -> None:
    # a spreadsheet export: every data row ends in a separator, the header does not (or does too)
    rows = "p1,a1,b1,1,\np2,a2,b2,0,\np3,a3,b3,,\n"
    for name, head in (("rows.csv", HEADER), ("both.csv", HEADER + ",")):
        pool = load_pool(write_csv(tmp_path / name, head + "\n" + rows))
        p = pool.pairs
        assert p["prompt"].tolist() == ["p1", "p2", "p3"], name
        assert p["completion_a"].tolist() == ["a1", "a2", "a3"] and p["completion_b"].tolist() == ["b1", "b2", "b3"]
        assert p["label"].tolist()[:2] == [1, 0] and p["label"].isna().tolist() == [False, False, True]
        assert list(p.columns) == ["id", "prompt", "completion_a", "completion_b", "label", "source", "group"], name
    tsv = tmp_path / "rows.tsv"
    tsv.write_text(HEADER.replace(",", "\t") + "\n" + rows.replace(",", "\t"), encoding="utf-8")
    assert load_pool(tsv).pairs["prompt"].tolist() == ["p1", "p2", "p3"]


def test_csv_ragged_rows_and_unquoted_commas_are_located(tmp_path: Path) -> None:
    # a row with too few values names the first missing column (an empty label would be read as 'unlabelled')
    f = write_csv(tmp_path / "short.csv", f"{HEADER}\np1,a1,b1,1\np2,a2,b2\n")
    assert_located(f, 2, "label", "3 values")
    # an unquoted comma in the first data row: pandas used the extra value as an index and shifted every column
    f = write_csv(tmp_path / "first.csv", f"{HEADER}\nWhat is 1, 2 or 3?,a1,b1,1\np2,a2,b2,0\n")
    assert_located(f, 1, "prompt", "unquoted comma")
    f = write_csv(tmp_path / "later.csv", f"{HEADER}\np1,a1,b1,1\np2,a2,b2,0\np3,a3,yes, it is,0\n")
    assert_located(f, 3, "completion_b", "unquoted comma")
    # several values could hold the comma: the line is named, the field is not guessed
    f = write_csv(tmp_path / "unsure.csv", f"{HEADER}\np1,a1,b1,1\np2,a2,b2,0,x\n")
    err = assert_located(f, 2, None, "5 values")
    assert "prompt, completion_a, completion_b, label" in str(err)
    # a quoted comma is text, and data rows count from 1 after the header even with a quoted newline
    f = write_csv(tmp_path / "quoted.csv", f'{HEADER}\n"What is 1, 2\nor 3?",a1,b1,1\np2,a2,b2,7\n')
    assert_located(f, 2, "label", "expected one of")


def test_csv_duplicated_or_unnamed_header_is_an_error(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "dup.csv", f"{HEADER},label\np1,a1,b1,1,0\n")
    assert_located(f, None, "label", "header names column 'label' twice (columns 4 and 5)")
    f = write_csv(tmp_path / "unnamed.csv", "prompt,,completion_a,completion_b\np1,x,a1,b1\n")
    assert_located(f, None, None, "column 2 has no name")
    # an unnamed last column that holds values is data, not a trailing separator
    f = write_csv(tmp_path / "unnamed_last.csv", f"{HEADER},\np1,a1,b1,1,note\n")
    assert_located(f, 1, None, "column 5 has no name")


def test_deeply_nested_json_is_a_located_error(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    rec = '{"prompt": "q", "completion_a": "a", "completion_b": "b", "meta": {"notes": ' + deep + "}}"
    f = write_lines(tmp_path / "deep.jsonl", [GOOD, rec])
    assert_located(f, 2, "meta", "nested 5001 levels deep")
    j = tmp_path / "deep.json"
    j.write_text("[" + json.dumps(GOOD) + ",\n" + rec + "]", encoding="utf-8")
    assert_located(j, 2, "meta", "nested 5001 levels deep")
    w = tmp_path / "wrapped.json"  # {"data": [...]} is read as the list it holds
    w.write_text('{"data": [' + json.dumps(GOOD) + ",\n" + rec + "]}", encoding="utf-8")
    assert_located(w, 2, "meta", "nested 5001 levels deep")


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # JSON: RecursionError
    "(" * 100_000 + ")" * 100_000,  # Python literal: 'too many nested parentheses'
    "-" * 199_999 + "1",  # Python literal: MemoryError from the parser
])
def test_qa_feedback_string_too_deep_to_parse_is_a_located_error(text: str, tmp_path: Path) -> None:
    f = tmp_path / "qa.json"
    f.write_text(json.dumps([QA_RECORD, QA_RECORD | {"question": "Why?", "passages": text}]), encoding="utf-8")
    assert_located(f, 2, "passages", "too deeply nested")
    f.write_text(json.dumps([QA_RECORD | {"preference": text}]), encoding="utf-8")
    assert_located(f, 1, "preference", "too deeply nested")


def test_nan_label_means_missing_in_every_container(tmp_path: Path) -> None:
    j = tmp_path / "nan.jsonl"
    j.write_text(json.dumps(GOOD) + "\n" + '{"prompt": "q", "completion_a": "a", "completion_b": "b", "label": NaN}\n'
                 + '{"prompt": "r", "completion_a": "a", "completion_b": "b", "label": null}\n', encoding="utf-8")
    c = write_csv(tmp_path / "nan.csv", f"{HEADER}\np,a,b,1\nq,a,b,NaN\nr,a,b,\n")
    c2 = write_csv(tmp_path / "nan2.csv", f"{HEADER}\np,a,b,1\nq,a,b,nan\nr,a,b,null\n")
    pools = [load_pool(x) for x in (j, c, c2)]
    for p in pools:
        assert p.pairs["label"].tolist()[0] == 1 and p.pairs["label"].isna().tolist() == [False, True, True]
    assert pools[0].ids.tolist() == pools[1].ids.tolist() == pools[2].ids.tolist()
    assert_located(write_csv(tmp_path / "inf.csv", f"{HEADER}\np,a,b,inf\n"), 1, "label", "expected one of")


def test_encodings_and_separators_are_named(tmp_path: Path) -> None:
    text = "prompt,chosen,rejected\ncafé,ja,nein\n"
    bom = tmp_path / "bom.csv"  # Excel's "CSV UTF-8" starts with a byte order mark: read as UTF-8
    bom.write_bytes(text.encode("utf-8-sig"))
    assert load_pool(bom).pairs["prompt"].tolist() == ["café"]
    bom_jsonl = tmp_path / "bom.jsonl"
    bom_jsonl.write_bytes(jsonl_bytes := ("\ufeff" + json.dumps(GOOD) + "\n").encode("utf-8"))
    assert jsonl_bytes.startswith(b"\xef\xbb\xbf") and len(load_pool(bom_jsonl)) == 1
    for codec, name in (("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")):
        f = tmp_path / f"{codec}.csv"
        f.write_bytes(text.encode(codec))
        assert_located(f, None, None, f"{name} text")
    semi = write_csv(tmp_path / "semi.csv", "prompt;chosen;rejected\nq;a, b;c\n")
    assert_located(semi, None, None, "separated by ';'?")
    gz = tmp_path / "broken.jsonl.gz"
    data = bytearray(gzip.compress(b"".join(json.dumps(GOOD | {"prompt": f"p{i}"}).encode() + b"\n" for i in range(50))))
    data[20] ^= 0xFF  # the deflate stream itself (zlib.error, not an OSError)
    gz.write_bytes(bytes(data))
    assert_located(gz, None, None, "broken gzip file")
