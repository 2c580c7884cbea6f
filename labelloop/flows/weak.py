"""Stage: weak labeling — apply LFs → analyse → aggregate → store ``weak`` rows → artifacts.

Items no LF covers are left alone here: the model stage predicts them, which is
where coverage grows.
"""

from __future__ import annotations

import numpy as np
from prefect import flow

from labelloop.flows.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from labelloop.labeling.lf import lf_set_version, lfs_from_config
from labelloop.runtime import open_stage
from labelloop.tasks.weak import (
    LF_SET_PREFIX,
    analyse_task,
    apply_lfs_task,
    fit_label_model_task,
    known_labels,
    load_items_task,
    store_weak_labels_task,
)

__all__ = ["weak_flow"]


def _accuracy_agreement(summary) -> str:
    """One line: how well the learned LF accuracies track the empirical ones on gold (Spearman)."""
    if "Emp. Acc." not in summary or "Learned Acc." not in summary:
        return "- learned vs empirical LF accuracy: no gold/expert labels to compare with"
    both = summary[["Emp. Acc.", "Learned Acc."]].dropna()
    if len(both) < 3:
        return f"- learned vs empirical LF accuracy: only {len(both)} LFs vote on known items"
    rho = both["Emp. Acc."].rank().corr(both["Learned Acc."].rank())
    return f"- learned vs empirical LF accuracy over {len(both)} LFs: Spearman {rho:.2f} (columns below)"


@flow(name="weak_labeling", log_prints=True)
def weak_flow(config_path: str, run_id: str) -> dict:
    """Weak labels from the config's labeling functions; returns coverage, rows written and the LF-set version."""
    config, store = open_stage(config_path)
    try:
        if not config.weak.enabled:
            print("weak labeling: disabled in the config")
            return {"enabled": False}
        dataset, classes = config.dataset.name, config.dataset.classes
        lfs = lfs_from_config(config.weak.lfs, classes)  # heuristics imported now: a bad path fails before any write
        version = lf_set_version(lfs)
        items = load_items_task(store, dataset)
        item_ids = items["id"].to_numpy(dtype=np.int64)
        applied = apply_lfs_task(lfs, items, config)
        L = applied["L"]
        y_known = known_labels(store, dataset, item_ids, len(classes))
        model = fit_label_model_task(L, y_known, config)
        summary = analyse_task(L, lfs, y_known, model, applied["fault_counts"])
        stored = store_weak_labels_task(store, dataset, item_ids, L, model.predict_proba(), version, run_id,
                                        labels=model.predict())
    finally:
        store.close()

    n = len(item_ids)
    coverage = float(stored["covered"] / n) if n else 0.0
    rows = summary.reset_index(names="LF").assign(Polarity=lambda f: f["Polarity"].map(lambda p: ", ".join(classes[c] for c in p)))
    rows = rows.drop(columns=["j"]).to_dict("records")
    publish_table(artifact_key(dataset, "lf-analysis"), rows,
                  description=f"Labeling functions of LF set {LF_SET_PREFIX}{version}: coverage, overlaps, conflicts, accuracies")
    lines = [
        f"## Weak labeling: LF set `{LF_SET_PREFIX}{version}`",
        "",
        f"- items: **{n}**; covered by at least one LF: **{stored['covered']}** ({coverage:.1%}); "
        f"uncovered items are left to the model stage",
        f"- label model: `{config.weak.label_model}`"
        + (f" (ties: {config.weak.tie_break})" if config.weak.label_model == "majority" else "")
        + f"; EM ({'learned LF accuracies' if config.weak.label_model == 'majority' else 'label model'}) "
        f"{getattr(model, 'n_iter_', 1)} iterations, converged: {getattr(model, 'converged_', True)}"
        f"{'' if getattr(model, 'converged_', True) else ' (raise weak.n_iter)'}; anchored on "
        f"{int((y_known >= 0).sum()) if config.weak.use_gold else 0} known labels",
        _accuracy_agreement(summary),
        f"- weak rows written: **{stored['written']}**; older LF-set opinions retracted: {stored['retracted']}",
        "",
        markdown_table(rows),
    ]
    if applied["errors"]:
        lines += ["", "### LF errors (first of each)", ""] + [f"- {e}" for e in applied["errors"][:50]]
    publish_markdown(artifact_key(dataset, "weak-summary"), "\n".join(lines), description="Weak labeling stage")
    print("\n".join(lines))
    return {
        "enabled": True,
        "lf_set": f"{LF_SET_PREFIX}{version}",
        "items": n,
        "covered": stored["covered"],
        "coverage": coverage,
        "rows_written": stored["written"],
        "retracted": stored["retracted"],
        "faults": int(sum(applied["fault_counts"].values())),
    }
