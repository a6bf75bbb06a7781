# %% [markdown]
# # 01 · Quickstart: why a BAL-PM batch is less redundant than a BALD batch
#
# BAL-PM (Melo, Tigas, Abate & Gal, NeurIPS 2024) chooses which preference pairs a person should label next. Plain
# **BALD** ranks pairs by the ensemble's epistemic uncertainty and takes the top *B*; pairs that share a prompt (or
# sit in the same corner of the prompt space) tend to be uncertain together, so one batch can spend most of its
# labels on one topic. **BAL-PM** adds an entropy bonus over the *prompt* space to BALD and picks greedily, so each
# pick makes the next pick near it less attractive.
#
# This notebook loads a real pool, embeds it, fits the ensemble once, and compares the two batches on a UMAP map of
# the prompts and with a few numbers. Everything here is the code the app runs (`balpm.learner`, `balpm.plots`).
#
# Set `BALPM_NOTEBOOK_MODE=full` before starting the kernel for whole datasets (the default, `quick`, uses small
# samples and takes a few minutes on a laptop CPU).

# %%
from _setup import HH, MAX_LENGTH, POOL_PAIRS, QA, QUICK, pick_both, setup, show_maps, sweep

setup()  # BALPM_NOTEBOOK_MODE (quick or full), torch threads; the pools every notebook draws: notebooks/_setup.py

# %%
from IPython.display import display

from balpm.data import format_summary, summarize
from balpm.diversity import diversity_table
from balpm.embed import Embedder, embed_pool
from balpm.experiment import load_labelled_sample

# %%
INITIAL = 16 if QUICK else 64      # random labelled pairs the ensemble is fitted on (the dataset's own labels)
BATCH = 16 if QUICK else 32        # pairs per suggested batch
N_MEMBERS = 3 if QUICK else 5      # ensemble members
SWEEP_SEEDS = range(5)             # initial sets used to check the contrast is not one lucky draw
SETTINGS = dict(initial=INITIAL, batch_size=BATCH, n_members=N_MEMBERS)

# %% [markdown]
# ## 1. A real pool: QA-Feedback
#
# AllenAI QA-Feedback: every question has four answers and up to six human pairwise verdicts, so **each prompt
# appears up to six times** in the pool. `group` identifies the prompt.

# %%
pool = load_labelled_sample(QA, POOL_PAIRS[QA])
print(format_summary(summarize(pool)))
pool.pairs[["group", "prompt", "completion_a", "completion_b", "label"]].head(3)

# %% [markdown]
# ## 2. Embed
#
# One frozen model (MiniLM, 384-d) embeds the prompt alone (the space BAL-PM's entropy term lives in) and
# prompt + each completion (the features of the preference model). Vectors are cached on disk by content, so the
# other notebooks and the app reuse them.

# %%
embedder = Embedder("default", max_length=MAX_LENGTH)
emb = embed_pool(pool, embedder)
print(embedder)
print("embedding stats:", emb.stats)

# %% [markdown]
# ## 3. Fit the ensemble once, pick a batch two ways
#
# Two learners with the same seed draw the same initial labelled set and fit the same ensemble (every random
# choice is seeded by `(seed, round)`), so they see the same BALD for every pair: only the acquisition differs.
# `pick_both` (in `notebooks/_setup.py`) builds the two learners and checks that their ensembles agree.

# %%
picks, pool_bald = pick_both(pool, emb, **SETTINGS)
cols = ["pick", "row", "uncertainty", "entropy_term", "score", "ratio"]
for policy, sel in picks.items():
    sel = sel.assign(group=pool.groups[sel["row"]], prompt=sel["prompt"].str.slice(0, 60))
    print(f"--- {policy}")
    display(sel[cols + ["group", "prompt"]].head(8))

# %% [markdown]
# `uncertainty` is BALD in nats, `entropy_term` is $\beta\hat H$ at the moment of the pick, `ratio` is the share
# of BAL-PM's score that came from uncertainty. With only a few labels the ensemble barely departs from
# $P=0.5$, BALD is tiny everywhere and BAL-PM's choice is driven by the entropy term (ratio near 0). The paper
# reports the uncertainty share rising as labels accumulate; notebook 02 plots it over rounds.
#
# ## 4. How redundant is each batch?
#
# For the prompts of one batch:
#
# - **distinct prompts**: how many different prompt groups the *B* picks cover;
# - **picks sharing a prompt**: picks whose prompt another pick of the batch also has (exact repeats);
# - **mean pairwise distance**: average Euclidean distance between the picks' prompt embeddings (unit vectors: 0
#   is the same prompt, $\sqrt 2$ is orthogonal);
# - **mean nearest-pick distance**: for each pick, the distance to the closest other pick, averaged (near-duplicates
#   pull this towards 0).
#
# (`balpm.diversity.batch_diversity`; `diversity_table` puts several batches side by side.)

# %%
qa_table = diversity_table({policy: sel["row"] for policy, sel in picks.items()}, emb.prompt, pool.groups)
qa_table.round(3)

# %% [markdown]
# ## 5. The two batches on a map of the prompt space
#
# UMAP of the prompt embeddings (the same cached projection as the app's *Feature space* page). Colour is each
# pair's BALD; diamonds are the picks. Repeated prompts sit on one spot, so a batch that spends several labels on
# one question shows fewer diamonds than picks.

# %%
show_maps(pool, emb, picks, pool_bald, "QA-Feedback")

# %% [markdown]
# ## 6. Not one lucky draw
#
# The same comparison after several different random initial sets (each its own ensemble).

# %%
qa_sweep = sweep(pool, emb, SWEEP_SEEDS, **SETTINGS)
display(qa_sweep.round(3))
print(f"QA-Feedback, mean over {len(SWEEP_SEEDS)} initial sets: BALD covers "
      f"{qa_sweep.loc['bald', 'distinct prompts']:.1f} prompts per batch of {BATCH}, "
      f"BAL-PM {qa_sweep.loc['bal-pm', 'distinct prompts']:.1f}")
assert qa_sweep.loc["bal-pm", "distinct prompts"] > qa_sweep.loc["bald", "distinct prompts"]

# %% [markdown]
# ## 7. The same on HH-RLHF
#
# In HH-RLHF almost every prompt appears once, so no batch repeats a prompt and the contrast can only show in the
# distances: BAL-PM's picks are a little further apart. QA-Feedback, with its six pairs per prompt, is where BALD's
# redundancy is plainest.

# %%
hh_pool = load_labelled_sample(HH, POOL_PAIRS[HH])
hh_emb = embed_pool(hh_pool, embedder)
print(format_summary(summarize(hh_pool)).splitlines()[1], "| embedding stats:", hh_emb.stats)
hh_picks, hh_bald = pick_both(hh_pool, hh_emb, **SETTINGS)
display(diversity_table({policy: sel["row"] for policy, sel in hh_picks.items()}, hh_emb.prompt, hh_pool.groups)
        .round(3))
show_maps(hh_pool, hh_emb, hh_picks, hh_bald, "HH-RLHF")
hh_sweep = sweep(hh_pool, hh_emb, SWEEP_SEEDS, **SETTINGS)
hh_sweep.round(3)

# %% [markdown]
# ## What to take away
#
# - Both policies use the same ensemble and the same BALD; BAL-PM only changes *how the batch is assembled*.
# - On QA-Feedback the BALD batch spends many of its labels on a few questions (picks sharing a prompt, nearest-pick
#   distance near 0); BAL-PM covers more distinct prompts.
# - With few labels BALD is nearly flat and BAL-PM's entropy term decides; notebook 02 shows how the balance shifts
#   over rounds and whether the spread-out batches buy a better model per label.
