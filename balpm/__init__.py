"""balpm: Bayesian Active Learning for Preference Modeling (BAL-PM, Melo et al., NeurIPS 2024).

The engine is a plain library (no UI imports). Modules:

- :mod:`balpm.data`: preference pools (readers, validation, group splits, built-in datasets)
- :mod:`balpm.embed`: frozen Hugging Face embeddings with an on-disk cache
- :mod:`balpm.neighbors`: the kNN graph of prompt embeddings (faiss)
- :mod:`balpm.model`: the batched Bradley-Terry deep ensemble
- :mod:`balpm.uncertainty`: BALD and friends (pure functions)
- :mod:`balpm.acquisition`: acquisition policies, ``balpm_select``
- :mod:`balpm.learner`: the active learner shared by simulations and human labelling
- :mod:`balpm.store`: the SQLite label store of a labelling session
- :mod:`balpm.experiment`: simulated runs, metrics, comparisons, "labels saved"
- :mod:`balpm.plots`: plotly figures shared by the app and notebooks
"""

__version__ = "0.1.0"
