"""balpm app: pick which preference pairs people should label (BAL-PM), label them, export them.

Start with ``streamlit run app.py``. This file only routes: every page is a thin file under ``pages/`` and every
shared helper (session, cached pool/embeddings/learner, sidebar) lives in ``appkit.py``.
"""

from __future__ import annotations

import streamlit as st

import appkit

st.set_page_config(page_title="balpm: active preference labelling", page_icon="⚖️", layout="wide")

_PAGES = [
    ("pages/1_pool.py", "Pool", "📂"),
    ("pages/2_embed.py", "Embed", "🧮"),
    ("pages/3_acquire.py", "Acquire", "🎯"),
    ("pages/4_label.py", "Label", "✍️"),
    ("pages/5_feature_space.py", "Feature space", "🗺️"),
    ("pages/6_diagnostics.py", "Diagnostics", "🩺"),
]

pages = [st.Page(path, title=title, icon=icon, default=(i == 0)) for i, (path, title, icon) in enumerate(_PAGES)]

session = appkit.current_session()
navigation = st.navigation(pages)
appkit.render_sidebar(session)
navigation.run()
