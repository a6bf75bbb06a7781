"""The embedded sample: a few hundred real preference pairs shipped inside the package.

A fresh clone (or an installed wheel) has no shared data folder; these files let the demo, the notebooks and the
tests run on real pairs anyway. The layout mirrors the data folder (``hh-rlhf/``, ``qa-feedback/``) and every
file is in its publisher's own format, so the same readers read it. ``README.md`` says how the sample was drawn,
``NOTICE`` gives the licences; :mod:`balpm.datasets.make_sample` redraws it from the full data.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_DIR"]

#: The folder holding the sample files (package data: present in a checkout and in an installed wheel).
SAMPLE_DIR: Path = Path(__file__).resolve().parent
