"""Regression and screening metrics of a surrogate: MAE, RMSE, R², Spearman, top-k recall.

Top-k recall (the share of the true top 10 % found in the predicted top 10 %) is what a
screening user needs; the others describe the fit as a whole.
"""

from __future__ import annotations

import numpy as np

TOP_FRACTION = 0.1


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def top_recall(y_true: np.ndarray, y_pred: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of the true top ``fraction`` that is also in the predicted top ``fraction``."""
    k = max(1, int(round(fraction * len(y_true))))
    true_top = set(np.argsort(-y_true, kind="stable")[:k].tolist())
    pred_top = set(np.argsort(-y_pred, kind="stable")[:k].tolist())
    return len(true_top & pred_top) / k


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "n": int(len(y_true)),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "spearman": spearman(y_true, y_pred) if len(y_true) > 1 else float("nan"),
        "top10_recall": top_recall(y_true, y_pred),
    }


def format_metrics(m: dict[str, float]) -> str:
    """``mae=0.397 rmse=…`` for a log line."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items())
