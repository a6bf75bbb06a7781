"""Preference pools: read pairwise preference data into one table, validate it, split it by prompt.

A pool is one table of pairs (:class:`PreferencePool`), whatever the source format:

``id`` (str, unique), ``prompt``, ``completion_a``, ``completion_b``, ``label`` (pandas ``Int8``: 1 = A
preferred, 0 = B preferred, ``<NA>`` = unlabelled), ``source``, ``group`` (identifies the prompt; splits never
cut a group), then metadata columns.

Sources (:func:`load_pool`)
---------------------------
- Files: JSON lines (``.jsonl``, ``.ndjson``, gzip or not), JSON (a list of objects, or one object per line),
  CSV/TSV, Parquet; a folder written by ``datasets.Dataset.save_to_disk``; a folder of such files
  (concatenated, ``source`` = file name). The record *schema* is detected from the fields of the first record:

  * ``prompt``/``chosen``/``rejected`` (trl convention): labelled; a seeded coin decides which completion is A.
  * ``prompt``/``completion_a``/``completion_b`` [/``label``]: kept in the given order; no ``label`` field (or an
    empty one) means unlabelled.
  * ``chosen``/``rejected`` without ``prompt``: Anthropic HH-RLHF transcripts. Both dialogues are cut after the
    last ``"\\n\\nAssistant:"``; the shared part is the prompt, the two final replies are the completions,
    kept exactly as in the source (leading space and all: ``prompt + chosen`` is the chosen transcript). The
    drop rules and the id judge the replies stripped, and so does what is embedded (the :data:`STRIP_COLUMN`
    metadata column marks such rows; :meth:`PreferencePool.completion_texts`). Coin as for trl.
  * ``info``/``summaries``/``choice``: OpenAI summarize-from-feedback comparisons. Order kept
    (A = ``summaries[0]``), ``label = 1 if choice == 0 else 0``, ``id = "{info.id}-{k}"`` (k-th comparison of
    that post in the file), ``group = info.id``; ``worker``, ``policy_a``/``policy_b``, ``confidence``,
    ``split``, ``batch`` kept as metadata.
  * ``question``/``prediction 1..4``/``preference``: AllenAI QA-Feedback. Six pairs per question in the order
    (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); ``preference`` 1 = first better, 2 = second, 0 = tie (dropped, counted
    as ``"tie"``). Which prediction is shown as A is the seeded coin (as for trl), ``pair`` = ``"i,j"`` in the
    shown order (A = prediction i), label 1 when prediction i was preferred. The prompt is the question alone
    (passages would push the answers out of an embedding model's window); ``passages`` (JSON text), ``gold``
    and ``pair`` are metadata; ``group`` = the question.

  * ``prompt``/``chosen``/``rejected`` or ``chosen``/``rejected`` holding message lists (``[{"role", "content"}]``):
    trl's conversational format, explicit or implicit prompt (:mod:`~balpm.data.chat`: the messages are kept in
    ``prompt_messages``/``completion_a_messages``/``completion_b_messages``, the texts are their plain rendering).
    Coin as for trl.

  Optional fields ``id``, ``group`` and ``source`` in the generic schemas override the defaults; other fields
  become metadata columns. Other column names are mapped with ``columns=`` (``--columns prompt=question,...``,
  :mod:`~balpm.data.columns`) before the schema is detected.
- Built-in names (:data:`BUILTIN_DATASETS`): ``hh-rlhf`` (the four splits, ``source`` says which),
  ``hh-rlhf:<split>`` and ``qa-feedback`` read the full files in :func:`data_dir`. When the folder lacks them,
  ``hh-rlhf:harmless-base`` and ``qa-feedback`` read the embedded sample shipped in the package
  (:func:`sample_dir`, ``balpm/datasets/``), so a fresh clone runs on real pairs; ``sample:<name>`` always reads
  the sample. ``pool.report.origin`` (and the summary's first line) says which was read.
- ``hf:NAME[:split]``: ``datasets.load_dataset`` (needs the network), same schemas.

Ids
---
The source's id where it has one (``id`` field, summarize ``info.id``), otherwise the first 16 hex digits of the
sha1 of prompt, first and second completion *in source order* (chosen before rejected; HH replies stripped,
:func:`hh_pair_id`), so an id never depends on the seed. The coin of pair ``id`` under seed ``s`` is a hash of
``(s, id)``: the same pair is shown the same way round whichever subset or split of a dataset is loaded.

Errors and drops (one rule for every source)
--------------------------------------------
The rule: **a record is dropped, not the file, exactly when the format's own published files hold such records
and they carry no usable comparison**: the text was *derived* by the reader (an HH transcript split) or
*generated* by a policy (a summarize summary, a QA-Feedback prediction) and came out empty, identical or
unsplittable, or the annotators gave no preference. Everything else the loader cannot use is an error, because
only the file's author can fix it. ``load_pool(..., strict=True)`` (``--strict`` on the command line, the
*Strict* box on the Pool page) turns every drop into an error located at the record.

*Errors* (:class:`PoolFormatError`, naming file, line/row and field): unreadable or malformed JSON/CSV, bytes
that are not UTF-8 (UTF-16 included; a UTF-8 byte order mark is fine), JSON nested deeper than the parser goes,
a missing required field, a text field you wrote (prompt, trl/pairs completions, summarize post) that is not a
string or is empty/blank, a label outside {0, 1} (a QA ``preference`` outside {0, 1, 2}, a summarize ``choice``
outside {0, 1}), duplicate explicit ids, an unknown schema; for CSV/TSV also a header naming a column twice or
a column without a name, and a row with fewer values than the header or with values past it (an unquoted
comma). Empty values past the last named column are trailing separators (spreadsheet exports write one on every
row) and are ignored; so are rows whose values are all blank.

*Drops*, counted by reason in ``pool.report.dropped`` with the file and line of the first in
``pool.report.first_dropped`` (the summary prints both): ``"identical completions"``, ``"duplicate pair"`` (same
hash id and label as an earlier row), ``"conflicting duplicate"`` (same hash id, other label; the first is
kept), ``"tie"`` (QA-Feedback), ``"empty completion"`` (a blank HH final reply after the split, a blank
summarize summary text, a blank QA prediction, which drops the three pairs it is in), and the HH transcript
rules ``"no assistant turn"`` and ``"prompts differ"``.

Missing labels are the same in every container: JSON ``null`` or ``NaN``, an absent field, an empty CSV cell and
the texts ``NaN``/``nan``/``NA``/``null``/``None`` (:data:`MISSING_LABEL_TEXTS`) all mean *unlabelled*.

Line numbers in errors are 1-based: the physical line for JSON lines, the data row (header not counted) for
CSV/Parquet/``datasets`` tables, the record number for a JSON list (first record = 1).

Modules
-------
:mod:`~balpm.data.pool` (the pair table, its load report and the located error), :mod:`~balpm.data.records` (one
reader per record schema, duplicates and drops), :mod:`~balpm.data.chat` (message lists), :mod:`~balpm.data.columns`
(column mapping), :mod:`~balpm.data.formats` (containers: JSON lines, JSON, CSV/TSV,
Parquet, ``datasets`` folders), :mod:`~balpm.data.sources` (:func:`load_pool`, built-in names, the embedded sample)
and :mod:`~balpm.data.summary` (what a user checks before labelling). Every public name is importable from
``balpm.data`` itself.
"""

from __future__ import annotations

from balpm.data.columns import TARGETS as COLUMN_TARGETS
from balpm.data.columns import format_columns, guess_columns, parse_columns
from balpm.data.pool import (
    CORE_COLUMNS,
    STRIP_COLUMN,
    LoadReport,
    PoolFormatError,
    PreferencePool,
    join_prompt_completion,
)
from balpm.data.records import HH_SEPARATOR, MISSING_LABEL_TEXTS, QA_PAIRS, hh_pair_id, pair_id, split_hh_transcript
from balpm.data.sources import (
    BUILTIN_DATASETS,
    HH_SPLITS,
    SAMPLE_OF,
    SAMPLE_PREFIX,
    data_dir,
    full_data_present,
    load_pool,
    read_fields,
    sample_dir,
)
from balpm.data.summary import format_summary, summarize

__all__ = [
    "BUILTIN_DATASETS",
    "COLUMN_TARGETS",
    "HH_SPLITS",
    "LoadReport",
    "MISSING_LABEL_TEXTS",
    "PoolFormatError",
    "PreferencePool",
    "SAMPLE_OF",
    "SAMPLE_PREFIX",
    "STRIP_COLUMN",
    "data_dir",
    "format_columns",
    "format_summary",
    "guess_columns",
    "hh_pair_id",
    "full_data_present",
    "join_prompt_completion",
    "load_pool",
    "pair_id",
    "read_fields",
    "parse_columns",
    "sample_dir",
    "split_hh_transcript",
    "summarize",
]
