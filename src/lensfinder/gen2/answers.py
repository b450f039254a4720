"""Written answers to the six questions of the gen2 debug request, from this run's numbers.

Nothing here is a conclusion typed in advance: each answer reads the comparison, the
per-run diagnostics and the analysis of the user's gen2 history, decides its verdict from
those numbers (significance from the intervals they carry), and cites the ``results/``
file every number comes from. A different run can therefore produce a different answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from lensfinder import pages
from lensfinder.contracts import Comparison, Diagnostics, metric_key, read
from lensfinder.tables import write_json

P = 0.05  # significance level of the memorisation test
T3, T4 = metric_key(1e-3), metric_key(1e-4)
BEST_F32 = f"best_epoch_float32_{T3}"  # the diagnostics key of the best epoch by float32 T3


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def _ci(v) -> str:
    return f"[{100 * v[0]:+.1f}, {100 * v[1]:+.1f}]" if v[0] < 0 or v[1] < 0 else f"[{100 * v[0]:.1f}, {100 * v[1]:.1f}]"


def _src(path) -> str:
    """Where a number comes from, in the evidence text (plain text; the page escapes it)."""
    return f"[{path}]"


def _row(c: dict, run: str, float32: bool = False) -> dict | None:
    """The summary row of ``run`` as stored, or (``float32``) its re-ranked float32 row."""
    return next((s for s in c["summary"] if s["run"] == run and s["role"].endswith("_float32") == float32), None)


def _factor(c: dict, factor: str) -> dict | None:
    return next((s for s in c["summary"] if s["factor"] == factor and s["role"] == "ablation"), None)


def _delta(s: dict, key: str) -> str:
    """A difference from the baseline with its bootstrap interval (seeds and test rows) and
    the Holm-corrected verdict; 'undecided' when the run has not the power to tell."""
    d, ci, p = s[f"delta_{key}"], s[f"delta_{key}_ci95"], s[f"delta_{key}_p_holm"]
    sig = (f"significant, Holm-adjusted p = {p:.2g}" if s[f"delta_{key}_significant"]
           else f"undecided at this run's power: Holm-adjusted p = {p:.2g}")
    return f"{key} {100 * d:+.1f} points {_ci(ci)} over {s['n_seeds']} seed(s) ({sig})"


def q1_paired(c, diag_ref, diag_base, paths) -> tuple[str, list[str]]:
    ev = []
    fb_ref, fb_base = diag_ref["flux_baseline"], diag_base["flux_baseline"]
    supported = []
    for fb, p in ((fb_ref, paths["flux_ref"]), (fb_base, paths["flux_base"])):
        m = fb["models"]["gradient_boosting"].get("test") or fb["models"]["gradient_boosting"]["val"]
        ev.append(f"Flux-only classifier (no pixels) on {fb['dataset']}: test AUC {m['auc']:.3f}, "
                  f"{T3} {_pct(m[T3])} {_ci(m[T3 + '_ci95'])} {_src(p)}")
    mem = diag_ref["memorisation"]
    if mem["applicable"] and mem["epochs"]:
        last = mem["epochs"][-1]
        if "auc_twin_trained_vs_other" in last:
            sig = last["p_value"] < P
            supported.append(sig)
            ev.append(f"Memorisation signature ({c['reference']}, last epoch {last['epoch']}): validation controls "
                      f"whose twin positive was trained on outscore the other controls with probability "
                      f"{last['auc_twin_trained_vs_other']:.3f} (0.5 = none; Mann-Whitney p = {last['p_value']:.2g}, "
                      f"n = {last['n_twin_trained']} vs {last['n_other']}) {_src(paths['diag_ref'])}")
    leak = diag_ref["leakage"]
    ev.append(f"Leakage audit of {fb_ref['dataset']}: {leak['galaxies_in_multiple_splits']} galaxies and "
              f"{leak['paired_twins_across_splits']} positive/control twins split across train/val/test "
              f"(gen3's dataset: {diag_base['leakage']['galaxies_in_multiple_splits']}) {_src(paths['diag_ref'])}")
    s = _factor(c, "paired_row")
    cliff = False
    if s:
        supported.append(s["delta_" + T3 + "_significant"] and s["delta_" + T3] < 0)
        cliff = any(s["val_cliff_epochs"].values())
        ev.append(f"Ablation gen3 + paired controls split by row, scored on the test bench (the same rows as gen3, "
                  f"sky prevalence): {_delta(s, T3)}; {_delta(s, T4)}; validation cliffs: "
                  f"{'yes' if cliff else 'none'} {_src(paths['comparison'])}")
    shortcut_fp, bench_ev = bench_shortcut(c)
    ev += [f"{e} {_src(paths['comparison'])}" for e in bench_ev]
    auc = {fb["dataset"]: (fb["models"]["gradient_boosting"].get("test") or fb["models"]["gradient_boosting"]["val"])["auc"]
           for fb in (fb_ref, fb_base)}
    cnn = _row(c, c["baseline"])
    most = max(auc.values()) >= cnn["auc"] - 0.05
    shortcut = (f"A classifier that sees only aperture fluxes reaches AUC {auc[fb_ref['dataset']]:.2f} with paired "
                f"controls and {auc[fb_base['dataset']]:.2f} with matched unpaired ones (the gen3 CNN: "
                f"{cnn['auc']:.2f}): 'extra flux' " + ("carries most of this task" if most else "explains only part of "
                "this task") + (" under either control strategy. " if abs(auc[fb_ref['dataset']] - auc[fb_base['dataset']])
                                < 0.03 else ", more so with paired controls. " if auc[fb_ref['dataset']] >
                                auc[fb_base['dataset']] else ", less so with paired controls. "))
    mem_sig = bool(supported and supported[0])
    if s is None:
        effect = "no paired-control ablation was run"
    elif not s["delta_" + T3 + "_significant"]:
        effect = "the paired-control ablation does not move the low-FPR TPR beyond its interval"
    elif s["delta_" + T3] < 0:
        effect = ("the paired-control ablation costs low-FPR TPR beyond its interval" +
                  (", with a cliff in its validation history" if cliff else ", as a shift, not a cliff"))
    else:
        effect = ("the paired-control ablation scores *higher* on its own (paired, row-split) test split: paired data "
                  "flatter the metric rather than collapse it")
    mem = ("validation controls whose twin was trained on score higher than the others (memorisation)" if mem_sig
           else "the memorisation test finds no significant preference for controls whose twin was trained on")
    bad = mem_sig or shortcut_fp or (s is not None and s["delta_" + T3 + "_significant"] and s["delta_" + T3] < 0)
    fp = ("On the test bench, at equal TPR, gen2 accepts significantly more of the look-alikes that carry extra flux "
          "(unlensed sources, blue companions) than gen3 -- the shortcut, measured on the same galaxies. "
          if shortcut_fp else "On the test bench, at equal TPR, gen2 does not accept significantly more unlensed "
          "sources or blue companions than gen3. ")
    verdict = (("Partly supported. " if bad else "Not supported as the cause of the collapse by this run. ") + shortcut +
               fp + f"The paired, row-split data leak {leak['galaxies_in_multiple_splits']} galaxies across splits; "
               f"{mem}; {effect}.")
    return verdict, ev


SHORTCUT_POPULATIONS = ("unlensed_source", "blue_companion")


def bench_shortcut(c) -> tuple[bool, list[str]]:
    """(gen2 accepts more of the extra-flux look-alikes than gen3 at TPR 0.9 on the bench,
    beyond both Wilson intervals, for any of them; the evidence lines)."""
    ref, base = _row(c, c["reference"]), _row(c, c["baseline"])
    ev, worse = [], False
    for pop in SHORTCUT_POPULATIONS:
        r, b = ref["bench_populations"].get(pop), base["bench_populations"].get(pop)
        if not r or not b:
            continue
        for t in ("0.9", "0.5"):
            k = f"fpr@tpr{t}"
            if t == "0.9":
                worse |= r[f"{k}_ci95"][0] > b[f"{k}_ci95"][1]
            ev.append(f"Test bench, {pop} (n = {r['n']}): FPR at TPR {t} {_pct(r[k])} {_ci(r[k + '_ci95'])} for "
                      f"{c['reference']} against {_pct(b[k])} {_ci(b[k + '_ci95'])} for {c['baseline']} (same rows)")
    return worse, ev


def q2_cliff(c, diag_ref, user, paths) -> tuple[str, list[str]]:
    ev = []
    stored = diag_ref["score_dtype"]
    cl = diag_ref["cliffs"]
    ref = _row(c, c["reference"])
    ref32 = _row(c, c["reference"], float32=True)
    stored_cliffs = {k: v for k, v in cl.get(stored, {}).items() if v}
    f32_cliffs = {k: v for k, v in cl.get("logit_float32", {}).items() if v}
    ev.append(f"{c['reference']} validation cliffs ranked as {stored}: {stored_cliffs or 'none'}; as float32 logits "
              f"of the same weights: {f32_cliffs or 'none'} {_src(paths['diag_ref'])}")
    for t in diag_ref["ties"]:
        if t["score_dtype"] == stored and any(t["epoch"] in v for v in stored_cliffs.values()):
            f = next(x for x in diag_ref["ties"] if x["epoch"] == t["epoch"] and x["score_dtype"] == "logit_float32")
            ev.append(f"Epoch {t['epoch']}: {t['n_neg_tied_at_top']} negatives and {t['n_pos_tied_at_top']} positives "
                      f"tied at the top {stored} score ({t['n_neg_saturated']} negatives saturated at exactly 1.0; "
                      f"largest control logit {t['max_logit_neg']:.2f}, bf16 saturates above "
                      f"{diag_ref['saturation_logit']['prob_bfloat16']:.2f}); as float32 logits: "
                      f"{f['n_neg_tied_at_top']} tied, {T3} {_pct(f[T3])} instead of "
                      f"{_pct(t[T3])} {_src(paths['diag_ref'])}")
    if ref and ref32 and ref["score_dtype"] != "logit_float32":
        ev.append(f"Test split, {c['reference']}: {T3} {_pct(ref[T3])} as {ref['score_dtype']} vs "
                  f"{_pct(ref32[T3])} as float32 logits (same weights; {ref['n_neg_tied_at_top']} vs "
                  f"{ref32['n_neg_tied_at_top']} negatives tied at the top) {_src(paths['comparison'])}")
    s = _factor(c, "bf16_scores")
    if s:
        ev.append(f"Ablation gen3 + bf16 probabilities: {_delta(s, T3)}; validation cliffs "
                  f"{ {k: v for k, v in s['val_cliff_epochs'].items() if v} or 'none'} {_src(paths['comparison'])}")
    if user:
        ev.append(f"Your gen2 history: {user['verdict']} {_src(paths['user'])}")
        ev += list(user["explanation"])
    if stored_cliffs and not f32_cliffs:
        eps = sorted({e for v in stored_cliffs.values() for e in v})
        rows = {(t["epoch"], t["score_dtype"]): t for t in diag_ref["ties"]}
        n_sat = sum(rows[(e, stored)]["n_neg_saturated"] > 0 for e in eps)
        f32 = [rows[(e, "logit_float32")][T3] for e in eps]
        verdict = (f"Ties in the stored scores, not a ranking change: in this run tpr@fpr falls to 0 at epoch(s) "
                   f"{', '.join(map(str, eps))} when scores are ranked as {stored}, and the float32 logits of the same "
                   f"weights give {T3} = {_pct(min(f32))}-{_pct(max(f32))} there, with no cliff. At "
                   f"{n_sat} of these epochs a control was saturated at exactly 1.0; at the others it sat in one of "
                   f"{stored}'s coarse steps just below 1.0 together with lenses. Once more than fpr x n_neg controls "
                   "share the top score, tpr at that fpr is 0 -- a step, not a slope.")
    elif user and user["saturation_signature_epochs"] or (user and any(user["cliffs"].values())):
        verdict = ("Your own history carries the saturation signature (computed below from your logged numbers). "
                   "This mock-sky run did not reach saturated controls "
                   f"({'no cliff in either dtype' if not stored_cliffs else 'cliffs persist in float32 logits'}), "
                   "so it cannot show the cliff directly; the tie arithmetic explains your cliff exactly.")
    else:
        verdict = "No cliff was observed in this run, and no user history was analysed."
    return verdict, ev


def q3_eval(c, diag_ref, user, paths) -> tuple[str, list[str]]:
    ev = []
    stored = diag_ref["score_dtype"]
    gap = [(t["epoch"], t[T3], next(x for x in diag_ref["ties"] if x["epoch"] == t["epoch"]
                                                    and x["score_dtype"] == "logit_float32")[T3])
           for t in diag_ref["ties"] if t["score_dtype"] == stored]
    worst = max(gap, key=lambda g: g[2] - g[1])
    ev.append(f"Largest gap between ranking {stored} scores and float32 logits of the same epoch: epoch {worst[0]}, "
              f"{T3} {_pct(worst[1])} vs {_pct(worst[2])} {_src(paths['diag_ref'])}")
    if user:
        ok = [e for e in user["epochs"] if "consistent" in e]
        ev.append(f"Your logged metrics at the cliff epochs are {'all' if all(e['consistent'] for e in ok) else 'not all'} "
                  f"what a correct tie-aware ROC gives for the tied block implied by your fpr@tpr values "
                  f"({len(ok)} epochs checked) {_src(paths['user'])}")
    ref = _row(c, c["reference"])
    ev.append(f"With {ref['n_neg']} test negatives here the smallest resolvable FPR is {ref['min_resolvable_fpr']:.1e}; "
              f"{T4} below that is TPR at zero false positives (flagged, not extrapolated) {_src(paths['comparison'])}")
    bad = [e["epoch"] for e in (user or {}).get("epochs", []) if e.get("consistent") is False]
    checked = [e["epoch"] for e in (user or {}).get("epochs", []) if "consistent" in e]
    if user and checked and not bad:
        verdict = ("No sign of one: at every cliff epoch your logged zeros are exactly what a correct, tie-aware ROC "
                   "gives for the tied block your fpr@tpr values imply. The information was lost before the ROC -- "
                   f"when the scores were stored as {stored} -- so rank float32 logits and report the negatives tied "
                   "at the top (lensfinder does both). We cannot read roc_curve_np / tpr_at_fpr themselves; test "
                   "them on tied scores against scikit-learn.")
    elif bad:
        verdict = (f"Possibly: at epochs {bad} your logged tpr@fpr is not what a tie-aware ROC gives for the tied "
                   "block your fpr@tpr values imply. Compare roc_curve_np / tpr_at_fpr with scikit-learn on tied scores.")
    else:
        verdict = ("Not testable from this run's inputs: no user history with fpr@tpr values was given. lensfinder's "
                   "own evaluation ranks float32 logits with scikit-learn and reports ties.")
    return verdict, ev


def q4_expected(c, paths) -> tuple[str, list[str]]:
    ev = []
    moved = []
    for f, what in (("focal_alpha025", "focal loss with alpha = 0.25"),
                    ("gen2_schedule", "CosineAnnealingLR(T_max=epochs) stepped every batch"),
                    ("no_early_stopping", "no early stopping")):
        s = _factor(c, f)
        if s:
            ev.append(f"gen3 + {what}: {_delta(s, T3)}; {_delta(s, T4)} {_src(paths['comparison'])}")
            if s["delta_" + T3 + "_significant"] or s["delta_" + T4 + "_significant"]:
                moved.append(what)
    ref_lr = [e["lr"] for e in c["runs"][c["reference"]]["epochs"]]
    ev.append(f"{c['reference']} learning rate at the end of each epoch: "
              f"{', '.join(f'{x:.1e}' for x in ref_lr)} -- with T_max in epochs but stepped per batch the rate "
              f"oscillates between its maximum and eta_min every T_max steps {_src(paths['comparison'])}")
    cliffs = [f for f in ("focal_alpha025", "gen2_schedule", "no_early_stopping")
              if _factor(c, f) and any(_factor(c, f)["val_cliff_epochs"].values())]
    verdict = ((f"In this run {' and '.join(moved)} each changed the low-FPR TPR beyond its interval on its own"
                if moved else "In this run none of focal alpha 0.25, the per-batch cosine or the missing early "
                "stopping moved the low-FPR TPR beyond its interval on its own") + "; "
               + (f"{', '.join(cliffs)} produced a cliff in its validation history." if cliffs else
                  "none of them produced a cliff in its validation history. They shape how fast and how far the "
                  "model overfits; the cliff needs the saturated score dtype on top (Q2, Q5)."))
    return verdict, ev


def q5_loss(diag_ref, user, paths) -> tuple[str, list[str]]:
    o = diag_ref["overfitting"]
    sat = [(t["epoch"], t["n_pos_saturated"], t["n_neg_saturated"], t["n_pos"]) for t in diag_ref["ties"]
           if t["score_dtype"] == "prob_bfloat16"]
    ev = [f"Train loss {o['train_loss_first']:.3g} (epoch 0) -> {o['train_loss_last']:.3g} (last); mean |logit| of "
          f"lenses {o['mean_abs_logit_pos'][0]:.2f} -> {o['mean_abs_logit_pos'][-1]:.2f}, largest control logit "
          f"{o['max_logit_neg'][0]:.2f} -> {o['max_logit_neg'][-1]:.2f} {_src(paths['diag_ref'])}",
          "Scores that a bf16 sigmoid rounds to exactly 1.0, per epoch (lenses / controls): "
          + ", ".join(f"e{e}: {p}/{n}" for e, p, n, _ in sat) + f" {_src(paths['diag_ref'])}",
          f"Validation AUC (float32 logits) at the best epoch {o[BEST_F32]}: "
          f"{o['val_auc_at_best']:.3f}; at the last epoch: {o['val_auc_last']:.3f} {_src(paths['diag_ref'])}"]
    grew = o["mean_abs_logit_pos"][-1] > o["mean_abs_logit_pos"][0]
    user_losses = [e["train_loss"] for e in (user or {}).get("epochs", []) if e.get("train_loss") is not None]
    n_sat = sum(n for _, _, n, _ in sat)
    verdict = (f"Train loss fell {o['train_loss_first'] / max(o['train_loss_last'], 1e-12):.1f}x while the lenses' "
               f"mean |logit| went {'up' if grew else 'down'} ({o['mean_abs_logit_pos'][0]:.2f} -> "
               f"{o['mean_abs_logit_pos'][-1]:.2f}): pushing a confident example's loss towards 0 means scaling its "
               "logit up. Larger logits do not reorder anything by themselves; in a low-precision score they push "
               "lenses and the most lens-like controls past the saturation point together, where they tie. "
               + (f"Here {n_sat} control scores saturated over the epochs." if n_sat else
                  "Here no control reached the saturation point: this run's loss never got low enough to start "
                  "the cliff" + (f" (your history reached {min(user_losses):.0e})." if user_losses else ".")))
    return verdict, ev


def q6_other(c, diag_ref, paths) -> tuple[str, list[str]]:
    ev = []
    ref = c["runs"][c["reference"]]
    dup = diag_ref["duplication_factor"]
    ev.append(f"Loader duplication factor of {c['reference']}: {dup['per_epoch'][-1]:.2f} samples seen per training "
              f"sample per epoch ({dup['samples_seen']} seen over {len(dup['per_epoch'])} epochs for "
              f"{dup['n_train']} training rows) {_src(paths['diag_ref'])}")
    s = _factor(c, "legacy_sharding")
    if s:
        ev.append(f"gen3 + the worker sharding bug: {_delta(s, T3)} {_src(paths['comparison'])}")
    leak = diag_ref["leakage"]
    ev.append(f"Split of {leak.get('dataset', 'the gen2 dataset')} is '{leak.get('split_scheme', '?')}': "
              f"{leak['galaxies_in_multiple_splits']} galaxies in more than one split {_src(paths['diag_ref'])}")
    ev.append(f"{c['reference']} kept the weights of epoch {ref['checkpoint_epoch']} "
              f"(best validation epoch by float32 {T3}: {diag_ref['overfitting'][BEST_F32]}) "
              f"{_src(paths['comparison'])}")
    cfg = ref.get("config", {})
    train = cfg.get("train", {})
    found = []
    if diag_ref["score_dtype"] != "logit_float32":
        found.append(f"validation scores ranked as {diag_ref['score_dtype']} (see Q2)")
    lr = [e["lr"] for e in ref["epochs"]]
    if any(b > 1.01 * a for a, b in zip(lr[1:], lr[2:])):  # after warm-up a cosine anneal never rises
        found.append("a learning rate that rises again between epochs (cosine T_max in epochs, stepped per batch)")
    if train.get("loss") == "focal" and train.get("focal_alpha", 0.5) < 0.5:
        found.append(f"focal alpha = {train['focal_alpha']} down-weighting the positives of balanced data")
    if dup["per_epoch"][-1] > 1.01:
        found.append(f"each sample read {dup['per_epoch'][-1]:.1f}x per epoch by the loader")
    if leak["galaxies_in_multiple_splits"]:
        found.append(f"{leak['galaxies_in_multiple_splits']} galaxies in more than one split")
    if not train.get("early_stopping", {}).get("enabled", False):
        found.append("no early stopping: the last weights are kept")
    verdict = (f"This run's {c['reference']} shows {len(found)} mechanisms: " + "; ".join(found) + ". "
               "Each is fixed in the baseline and switched back on alone as an ablation; the table says which "
               "ones move the low-FPR TPR beyond its interval.") if found else "No further mechanism was detected."
    return verdict, ev


QUESTIONS = (
    "Is our paired controls hypothesis correct?",
    "What explains the sudden cliff-like drop from 79.8% to 0% between epoch 4 and 5?",
    "Is there a bug in the evaluation code (roc_curve_np, tpr_at_fpr)?",
    "Should we expect this behaviour with focal loss + cosine annealing + overfitting?",
    "What is the relationship between train_loss approaching 0 and the metric collapse?",
    "Are there other bugs in the training script we haven't identified?",
)


def write_answers(comparison_path, diag_ref_path, diag_base_path, user_path, out_html, out_json) -> list[dict]:
    """Rule body of ``answers``: six verdicts with evidence as HTML (for the report) and JSON."""
    c = read(Comparison, comparison_path)
    dr = read(Diagnostics, diag_ref_path)
    db = read(Diagnostics, diag_base_path)
    user = json.loads(Path(user_path).read_text()) if user_path else None
    paths = {"comparison": comparison_path, "diag_ref": diag_ref_path, "diag_base": diag_base_path,
             "user": user_path, "flux_ref": dr["sources"]["flux_baseline"], "flux_base": db["sources"]["flux_baseline"]}
    answers = [q1_paired(c, dr, db, paths), q2_cliff(c, dr, user, paths), q3_eval(c, dr, user, paths),
               q4_expected(c, paths), q5_loss(dr, user, paths), q6_other(c, dr, paths)]
    out = [{"question": q, "answer": a, "evidence": e} for q, (a, e) in zip(QUESTIONS, answers)]
    write_json(out, out_json)
    pages.write_page(out_html, "answers.html.j2", answers=out, reference=c["reference"], baseline=c["baseline"])
    return out
