"""Fitting match confidence (retriever.confidence), and the fitted calibrations a build puts in its manifest.

A calibration belongs to an embedding model, not to a corpus (its evidence is on corpus-free scales), so it is
fitted once per model by `bench/calibrate.py` and shipped in `index_build/calibrations/`, one JSON file per
model, keyed by the model's weights sha256. A build whose model has none records why in `no_confidence`.

The fit is a plain L2-regularised logistic regression by Newton's method: a handful of features and a few
thousand examples need nothing more (and no new dependency).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retriever.confidence import CALIBRATION_VERSION

CALIBRATIONS_DIR = Path(__file__).parent / "calibrations"


def calibration_for(weights_sha256: str) -> tuple[dict[str, Any] | None, str | None]:
    """The shipped calibration for a model's weights, or None and the reason there is none."""
    for path in sorted(CALIBRATIONS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("model_weights_sha256") == weights_sha256 and data.get("version") == CALIBRATION_VERSION:
            return data, None
    return None, (
        f"uncalibrated: no match-confidence model was fitted for these weights (sha256 {weights_sha256[:16]}...); "
        "fit one with bench/calibrate.py --model MODEL and add it to index_build/calibrations/"
    )


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, steps: int = 50
) -> tuple[np.ndarray, float]:
    """Weights and bias of P(label = 1 | features), by Newton's method on the L2-penalised log loss."""
    x = np.hstack([np.asarray(features, float), np.ones((len(features), 1))])
    y = np.asarray(labels, float)
    if len(np.unique(y)) < 2:
        raise ValueError("a calibration needs both relevant and irrelevant examples")
    theta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2 * len(y))
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -500, 500)))
        gradient = x.T @ (p - y) + penalty * theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta[:-1], float(theta[-1])


def choose_threshold(answerable: Sequence[float], max_flagged: float) -> float:
    """The highest bar that flags at most `max_flagged` of the answerable questions' best confidences: the
    most unanswerable questions are flagged while answerable ones keep their answers."""
    ordered = np.sort(np.asarray(answerable, float))
    allowed = int(np.floor(max_flagged * len(ordered)))  # how many answerable questions may fall below the bar
    return float(ordered[allowed]) if allowed < len(ordered) else float(ordered[-1])
