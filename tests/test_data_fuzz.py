"""Fuzz test of the pool readers: malformed files in, a located PoolFormatError or a correct pool out.

Every case is generated from a small fixed list of seeds (no time, no global randomness), so a failure names a
case that reproduces exactly: ``pytest tests/test_data_fuzz.py -k 'flip-jsonl-3'``. Each file is a few kB at
most (one "huge line" case is 2 MB), so the whole file runs in a few seconds.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from balpm.data import PoolFormatError, PreferencePool, load_pool

SEEDS = (0, 1, 2, 3, 4)

TRL = [{"prompt": f"question {i}, please?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
       for i in range(6)]
PAIRS = [{"prompt": f"p{i}", "completion_a": f"a {i}", "completion_b": f"b {i}", "label": i % 2, "id": f"x{i}"}
         for i in range(6)]
HH = [{"chosen": f"\n\nHuman: hi {i}\n\nAssistant: yes {i}", "rejected": f"\n\nHuman: hi {i}\n\nAssistant: no {i}"}
      for i in range(6)]
SUMMARIZE = [{"info": {"id": f"t3_{i}", "post": "My cat.", "title": "Help", "subreddit": "pets"},
              "summaries": [{"text": f" cat {i}", "policy": "a"}, {"text": f" dog {i}", "policy": "b"}],
              "choice": i % 2, "worker": "w", "extra": {"confidence": 3}} for i in range(4)]
QA = [{"question": f"Who {i}?", "passages": "[['T', 'text']]", "gold": "g",
       **{f"prediction {j}": f"answer {i}.{j}" for j in range(1, 5)}, "preference": [1, 2, 0, 1, 2, 1]}
      for i in range(3)]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def csv_bytes(rows: list[dict], sep: str = ",") -> bytes:
    return pd.DataFrame(rows).to_csv(index=False, sep=sep).encode()


def parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    return buf.getvalue()


#: name -> (file suffix, well-formed bytes) that the mutations below damage
BASES: dict[str, tuple[str, bytes]] = {
    "trl-jsonl": (".jsonl", jsonl(TRL)),
    "pairs-jsonl": (".jsonl", jsonl(PAIRS)),
    "hh-jsonl-gz": (".jsonl.gz", gzip.compress(jsonl(HH), mtime=0)),
    "summarize-json": (".json", jsonl(SUMMARIZE)),
    "qa-json": (".json", json.dumps(QA).encode()),
    "pairs-csv": (".csv", csv_bytes(PAIRS)),
    "trl-tsv": (".tsv", csv_bytes(TRL, "\t")),
    "pairs-parquet": (".parquet", parquet(PAIRS)),
}


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


WRONG_VALUES = (3, 2.5, True, None, [], {}, ["x"], {"a": 1}, "", " ", "NaN", float("nan"), 1e400, -1, "1.0", "\x00",
                "\udc80", 10**30)


def wrong_type_rows(rows: list[dict], rng: random.Random) -> list[dict]:
    rows = [dict(r) for r in rows]
    r = rows[rng.randrange(len(rows))]
    r[rng.choice(sorted(r))] = rng.choice(WRONG_VALUES)
    return rows


def wrong_type(name: str) -> Callable[[random.Random], tuple[str, bytes]]:
    rows = {"trl": TRL, "pairs": PAIRS, "hh": HH, "summarize": SUMMARIZE, "qa": QA}[name]

    def make(rng: random.Random) -> tuple[str, bytes]:
        bad = wrong_type_rows(rows, rng)
        try:
            text = "".join(json.dumps(r) + "\n" for r in bad)
        except (TypeError, ValueError):
            text = "".join(json.dumps(r, default=str) + "\n" for r in bad)
        return ".jsonl", text.encode("utf-8", "surrogatepass")
    return make


def nested(rng: random.Random) -> tuple[str, bytes]:
    depth = rng.choice((50, 900, 1000, 5000, 20000))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    rec = dict(PAIRS[0])
    text = json.dumps(rec)[:-1] + ', "meta": ' + opener * depth + "1" + closer * depth + "}"
    field = rng.choice(("meta", "prompt"))
    if field == "prompt":
        text = '{"prompt": ' + opener * depth + '"p"' + closer * depth + ', "completion_a": "a", "completion_b": "b"}'
    return ".jsonl", (text + "\n").encode()


def qa_string(rng: random.Random) -> tuple[str, bytes]:
    key = rng.choice(("passages", "preference"))
    n = rng.choice((10, 300, 100_000))
    value = rng.choice(("[" * n + "]" * n, "(" * n + ")" * n, "-" * n + "1", "{1, 2}", "b'x'", "{[1]: 2}", "1" * 5000,
                        "[1, 2, 0, 1, 2]", "[1, 2, 0, 1, 2, 9]", "{'a': 1}", "[1, 2, 0, 1, 2, 1.5]"))
    return ".json", json.dumps([QA[0], {**QA[1], key: value}]).encode()


def encoding(rng: random.Random) -> tuple[str, bytes]:
    text = jsonl(TRL).decode() + json.dumps({"prompt": "café ☕", "chosen": "ja", "rejected": "nein"}) + "\n"
    suffix = rng.choice((".jsonl", ".csv"))
    if suffix == ".csv":
        text = "prompt,chosen,rejected\ncafé ☕,ja,nein\nq2,x,y\n"
    codec = rng.choice(("utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "utf-8-sig", "cp1252"))
    return suffix, text.encode(codec, "replace")  # latin-1 and cp1252 cannot hold the cup: "?"


def separators(rng: random.Random) -> tuple[str, bytes]:
    sep = rng.choice((";", "|", "\t", ",,", " "))
    head = sep.join(["prompt", "completion_a", "completion_b", "label"])
    body = "\n".join(sep.join([f"p{i}", f"a {i}", f"b, {i}", str(i % 2)]) for i in range(4))
    newline = rng.choice(("\n", "\r\n", "\r"))
    return rng.choice((".csv", ".tsv")), (head + "\n" + body + "\n").replace("\n", newline).encode()


def csv_shapes(rng: random.Random) -> tuple[str, bytes]:
    lines = ["prompt,completion_a,completion_b,label", "p1,a1,b1,1", "p2,a2,b2,0", "p3,a3,b3,"]
    i = rng.randrange(len(lines))
    kind = rng.choice(("extra", "short", "quote", "trailing", "blank", "dup", "nul", "unclosed"))
    if kind == "extra":
        lines[i] += ",x, y"
    elif kind == "short":
        lines[i] = lines[i].rsplit(",", 2)[0]
    elif kind == "quote":
        lines[i] = '"' + lines[i]
    elif kind == "trailing":
        lines = [x + "," for x in lines]
    elif kind == "blank":
        lines.insert(i, ",,,")
    elif kind == "dup":
        lines[0] += ",prompt"
    elif kind == "nul":
        lines[i] = lines[i].replace("1", "\x00")
    else:
        lines[i] += ',"never closed'
    return ".csv", ("\n".join(lines) + "\n").encode()


def garbage(rng: random.Random) -> tuple[str, bytes]:
    suffix = rng.choice((".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ".tsv"))
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
    if suffix.endswith(".gz") and rng.random() < 0.5:
        data = b"\x1f\x8b" + data  # looks like gzip, is not
    return suffix, data


def small_files(rng: random.Random) -> tuple[str, bytes]:
    return rng.choice((
        (".jsonl", b""), (".json", b""), (".csv", b""), (".jsonl", b"\n\n  \n"), (".json", b"null"),
        (".json", b"[]"), (".json", b"{}"), (".json", b"[1, 2]"), (".json", b'"text"'), (".json", b'{"data": 3}'),
        (".jsonl", b"[1]\n"), (".csv", b"\xef\xbb\xbf"), (".csv", b"prompt,chosen,rejected\n"), (".jsonl.gz", b""),
        (".parquet", b"PAR1"), (".json", b"[{}]"), (".jsonl", b'{"prompt": "p"}\n'), (".json", b"NaN"),
    ))


def huge_line(rng: random.Random) -> tuple[str, bytes]:
    big = "word " * rng.choice((200_000, 400_000))
    rows = [{"prompt": big, "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": big, "rejected": "c"}]
    return rng.choice(((".jsonl", jsonl(rows)), (".csv", csv_bytes(rows))))


def parquet_types(rng: random.Random) -> tuple[str, bytes]:
    df = pd.DataFrame(PAIRS)
    col = rng.choice(list(df.columns))
    df[col] = rng.choice(([1.5] * len(df), [None] * len(df), [[1, 2]] * len(df), [b"bytes"] * len(df),
                          list(range(len(df))), [{"k": 1}] * len(df), [True] * len(df)))
    buf = io.BytesIO()
    try:
        df.to_parquet(buf)
    except Exception:  # a type pyarrow cannot write: damage the file instead
        return ".parquet", truncate(parquet(PAIRS), rng)
    return ".parquet", buf.getvalue()


def _from_base(kind: str, name: str) -> Callable[[random.Random], tuple[str, bytes]]:
    suffix, data = BASES[name]
    mutate = {"truncate": truncate, "flip": flip}[kind]

    def make(rng: random.Random) -> tuple[str, bytes]:
        if suffix.endswith(".gz") and rng.random() < 0.5:  # damage the text inside the gzip, too
            return suffix, gzip.compress(mutate(gzip.decompress(data), rng), mtime=0)
        return suffix, mutate(data, rng)
    return make


GENERATORS: dict[str, Callable[[random.Random], tuple[str, bytes]]] = {
    **{f"{kind}-{name}": _from_base(kind, name) for kind in ("truncate", "flip") for name in BASES},
    **{f"wrongtype-{name}": wrong_type(name) for name in ("trl", "pairs", "hh", "summarize", "qa")},
    "nested": nested, "qa-string": qa_string, "encoding": encoding, "separators": separators,
    "csv-shapes": csv_shapes, "garbage": garbage, "small-files": small_files, "parquet-types": parquet_types,
}
CASES = [(g, s) for g in GENERATORS for s in SEEDS] + [("huge-line", s) for s in SEEDS[:2]]


def check_pool(pool: PreferencePool) -> None:
    """What every correct load guarantees."""
    p = pool.pairs
    assert len(p) > 0 and pool.report.kept == len(p)
    assert list(p.columns[:7]) == ["id", "prompt", "completion_a", "completion_b", "label", "source", "group"]
    assert p["id"].is_unique and str(p["label"].dtype) == "Int8"
    assert set(p["label"].dropna().tolist()) <= {0, 1}
    for col in ("prompt", "completion_a", "completion_b"):
        assert all(isinstance(t, str) and t.strip() for t in p[col]), col
        for t in p[col]:
            t.encode("utf-8")  # no lone surrogates reach the embedder
    assert (p["completion_a"] != p["completion_b"]).all()


def test_enough_cases() -> None:
    assert len(CASES) >= 30 and len({g for g, _ in CASES}) >= 20


@pytest.mark.parametrize(("gen", "seed"), CASES, ids=[f"{g}-{s}" for g, s in CASES])
def test_malformed_file_is_a_located_error_or_a_correct_pool(gen: str, seed: int, tmp_path: Path) -> None:
    maker = huge_line if gen == "huge-line" else GENERATORS[gen]
    suffix, data = maker(random.Random(f"{gen}:{seed}"))
    f = tmp_path / f"fuzz{suffix}"
    f.write_bytes(data)
    try:
        pool = load_pool(f)
    except PoolFormatError as e:
        assert e.path.startswith(str(tmp_path)), e.path  # located: names the file
        assert str(e).startswith(e.path) and e.message.strip()
        return
    check_pool(pool)
