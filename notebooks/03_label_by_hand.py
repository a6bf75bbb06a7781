# %% [markdown]
# # 03 · Label by hand: the human-in-the-loop learner from code
#
# The app's labelling loop without the app: the learner suggests a batch, a person gives verdicts (A better, B
# better, tie, skip), the verdicts go to a durable `LabelStore` (SQLite), the model is refitted, the session is saved
# and loaded in a fresh learner that continues exactly where it stopped, and the labels are exported as a TRL-style
# dataset (`prompt`, `chosen`, `rejected`).

# %%
from _setup import HH, MAX_LENGTH, POOL_PAIRS, QUICK, setup

setup()  # BALPM_NOTEBOOK_MODE (quick or full), torch threads; the pools every notebook draws: notebooks/_setup.py

# %%
import tempfile
import time
from pathlib import Path

import pandas as pd

from balpm.config import PoolConfig
from balpm.embed import Embedder, embed_pool
from balpm.experiment import ExperimentConfig, load_experiment_pools
from balpm.learner import ActiveLearner
from balpm.store import LabelStore

# %%
DATASET = HH
INITIAL = 16 if QUICK else 64      # random pairs labelled first, so there is a model to ask
BATCH = 8                          # pairs per suggestion (a person's sitting)
MODEL = {"n_members": 3 if QUICK else 5}
WORK = (Path(tempfile.mkdtemp(prefix="balpm-nb03-")) if QUICK
        else Path("..").resolve() / "runs" / "notebook-03" / time.strftime("%Y%m%d-%H%M%S"))
WORK.mkdir(parents=True, exist_ok=True)
print("session folder:", WORK)

# %% [markdown]
# ## Pool, embeddings, learner
#
# Held-out prompts (a test split by prompt group) let us score the model on prompts it never saw. (In quick mode,
# with a few dozen labels, it stays near chance: log-likelihood $\approx -\log 2$.)

# %%
train, test, _ = load_experiment_pools(ExperimentConfig(PoolConfig(dataset=DATASET, max_pairs=POOL_PAIRS[DATASET],
                                                                   test_fraction=0.2, data_seed=0)))
embedder = Embedder("default", max_length=MAX_LENGTH)
emb_train, emb_test = embed_pool(train, embedder), embed_pool(test, embedder)
print(f"{len(train)} pairs to label from, {len(test)} held out")

learner = ActiveLearner(train, emb_train, policy="bal-pm", model_params=MODEL, batch_size=BATCH, seed=0)
store = LabelStore(WORK / "labels.sqlite")
truth = dict(zip(train.pairs["id"], train.pairs["label"]))   # the dataset's own human verdicts (1 = A better)


def verdict(pair_id):
    return "a" if truth[pair_id] == 1 else "b"


# Round 0: a random starting set. Its verdicts come from the dataset; they go into the store like any label.
for pid in learner.initialize(INITIAL):
    store.record(pid, verdict(pid), annotator="dataset", round=0, request_id=f"init:{pid}", batch_id="init")
learner.sync_from_store(store)      # the store is the source of truth of a labelling session
learner.fit()
print(learner, "| test:", {k: round(v, 4) for k, v in learner.evaluate(test, emb_test).items()})

# %% [markdown]
# ## Round 1: suggest a batch, give verdicts
#
# Each row is one pair to judge. In the app the two completions are shown side by side (in a seeded random order);
# here we print the end of the dialogue and the two final replies.

# %%
batch = learner.suggest()
batch_id = f"round-{int(batch['round'].iloc[0])}"
for _, row in batch.iterrows():
    print(f"[{row.pick}] {row.id}  BALD {row.uncertainty:.2e}  beta*H {row.entropy_term:.4f}")
    print("   prompt …", row.prompt[-160:].replace("\n", " "))
    print("   A:", row.completion_a[:120].replace("\n", " "))
    print("   B:", row.completion_b[:120].replace("\n", " "))

# %%
# A person would type one verdict per pair: "a", "b", "tie" or "skip".
# Here the dataset's own verdicts stand in for the typing; we call one pair a tie and skip another,
# to show how those are kept: decided (never offered again) but not labels for the model.
ids = batch["id"].tolist()
typed = {pid: verdict(pid) for pid in ids[:-2]}
typed[ids[-2]] = "tie"
typed[ids[-1]] = "skip"

for pid, v in typed.items():
    # request_id: one token per displayed pair, so a double click or a rerun of this cell records nothing twice
    res = store.record(pid, v, annotator="notebook", round=int(batch["round"].iloc[0]),
                       request_id=f"{batch_id}:{pid}", batch_id=batch_id)
    assert res.recorded, res
print("replaying a click:", store.record(ids[0], typed[ids[0]], annotator="notebook",
                                         request_id=f"{batch_id}:{ids[0]}").status)
store.events().tail(len(typed))[["event_id", "pair_id", "verdict", "label", "annotator", "round"]]

# %% [markdown]
# ## Refit, save, load in a fresh learner, continue
#
# The learner's picks depend only on its seed and the labelled set, so a saved learner loaded in a new process
# suggests exactly the batch the running one would. Ties and skips count as *decided* but give the model no label.

# %%
learner.sync_from_store(store)
learner.fit()
print(f"labels for the model: {learner.n_labeled_}, decided pairs: {int(learner.decided_mask.sum())}")
assert learner.n_labeled_ == INITIAL + BATCH - 2 and learner.decided_mask.sum() == INITIAL + BATCH
print("test:", {k: round(v, 4) for k, v in learner.evaluate(test, emb_test).items()})

learner.save(WORK / "learner")
store.set_meta("session", {"pool": DATASET, "policy": learner.policy, "seed": learner.seed})
next_batch = learner.suggest()

fresh = ActiveLearner.load(WORK / "learner", train, emb_train)
assert not fresh.is_stale                            # the saved ensemble came back: no refit needed
fresh_batch = fresh.suggest()
assert fresh_batch["id"].tolist() == next_batch["id"].tolist()

# Even without the saved model, the store alone rebuilds the same state (the refit is seeded by (seed, round)).
rebuilt = ActiveLearner(train, emb_train, **learner.get_params())
rebuilt.sync_from_store(store)
assert rebuilt.suggest()["id"].tolist() == next_batch["id"].tolist()
assert not set(next_batch["id"]) & set(typed)      # decided pairs (the tie and the skip too) are not offered again
print("the loaded learner and the one rebuilt from the store both suggest the same next batch:")
next_batch[["pick", "id", "uncertainty", "entropy_term", "ratio"]]

# %%
# Round 2, labelled in the fresh learner (all verdicts from the dataset this time).
batch_id = f"round-{int(fresh_batch['round'].iloc[0])}"
for pid in fresh_batch["id"]:
    store.record(pid, verdict(pid), annotator="notebook", round=int(fresh_batch["round"].iloc[0]),
                 request_id=f"{batch_id}:{pid}", batch_id=batch_id)
fresh.sync_from_store(store)
fresh.fit()
print(fresh, "| test:", {k: round(v, 4) for k, v in fresh.evaluate(test, emb_test).items()})
fresh.save(WORK / "learner")
fresh.acquired().groupby("round").agg(pairs=("id", "size"), model_labels=("label", "count"))

# %% [markdown]
# ## Export a TRL-style dataset
#
# `LabelStore.export_trl` writes the a/b verdicts as JSON lines with `prompt`, `chosen`, `rejected` (ties and skips
# left out), the format of TRL's reward trainer, and `id`, `annotator`, `labelled_at` to trace each line to its
# label: `datasets.load_dataset("json", data_files=...)` reads it.

# %%
path = WORK / "preferences.trl.jsonl"
n = store.export_trl(train, path)
trl = pd.read_json(path, lines=True, dtype={"id": str})  # ids stay text even when all digits
print(f"{n} preference pairs written to {path}")
assert list(trl.columns[:4]) == ["id", "prompt", "chosen", "rejected"] and len(trl) == n == len(store.label_map())

# Every exported 'chosen' is the completion the verdict preferred (here: the dataset's human choice).
by_id = train.pairs.set_index("id")
for row in trl.itertuples():
    pair = by_id.loc[row.id]
    assert row.chosen == (pair.completion_a if pair.label == 1 else pair.completion_b)
assert set(trl["id"]) == set(store.label_map())
store.close()
trl[["id", "prompt", "chosen", "rejected", "annotator"]].assign(
    prompt=trl["prompt"].str.slice(-80), chosen=trl["chosen"].str.slice(0, 60),
    rejected=trl["rejected"].str.slice(0, 60)).head()
