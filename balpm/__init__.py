"""balpm: Bayesian Active Learning for Preference Modeling (BAL-PM, Melo et al., NeurIPS 2024).

The engine is a plain library (no UI imports). What each module is for, how data flows between them and the
contracts they keep are written once, in ``docs/ARCHITECTURE.md``. A pool is read by :func:`balpm.data.load_pool`,
embedded by :func:`balpm.embed.embed_pool` and labelled through :class:`balpm.learner.ActiveLearner`.
"""

__version__ = "0.1.0"
