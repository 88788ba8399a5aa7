"""Time-ordered split, training and evaluation (scikit-learn).

The oldest ``1 - test_fraction`` of the samples train, the newest are held out. A
training sample whose label is decided after the first held-out print is dropped
(purged), so no training label uses prices from the held-out period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from analytics.dataset import I64, TooLittleData
from analytics.features import FEATURE_NAMES, Samples

MODELS = ("logistic", "boosting")
CLASSES = ("down", "up")  # label 0, 1
MIN_SAMPLES = 200
MIN_TEST = 50


@dataclass(frozen=True)
class ClassScore:
    """Precision and recall of one class on the held-out samples."""

    name: str
    precision: float
    recall: float
    support: int  # held-out samples of this class


@dataclass(frozen=True)
class Evaluation:
    """Held-out scores of one model, with the baselines it must beat."""

    model: str
    n_train: int
    n_test: int
    n_purged: int  # training samples dropped because their label looks into the test
    accuracy: float
    majority: str  # the training set's most frequent class
    majority_accuracy: float  # always predicting it on the held-out samples
    reversal_accuracy: float  # predicting the opposite of the last taker side
    classes: tuple[ClassScore, ...]
    test_from_ts: int
    test_to_ts: int
    fitted: Any = field(repr=False, compare=False)


def make_model(name: str, seed: int = 0) -> Any:
    """An unfitted classifier: ``logistic`` (scaled logistic regression) or ``boosting``."""
    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "boosting":
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=seed)
    raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}")


def split(s: Samples, test_fraction: float) -> tuple[I64, I64]:
    """``(train, test)`` sample indices: the oldest for training, purged; the newest held out."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    cut = round(len(s) * (1 - test_fraction))
    if len(s) < MIN_SAMPLES or len(s) - cut < MIN_TEST:
        raise TooLittleData(
            f"{len(s)} labelled samples: need at least {MIN_SAMPLES}"
            f" and {MIN_TEST} held out (let the market trade longer)"
        )
    first_test_print = s.row[cut]
    train = np.flatnonzero(s.resolve[:cut] <= first_test_print)
    return train.astype(np.int64), np.arange(cut, len(s), dtype=np.int64)


def evaluate(
    s: Samples,
    model: str = "logistic",
    test_fraction: float = 0.3,
    shuffle_seed: int | None = None,
    seed: int = 0,
) -> Evaluation:
    """Train on the older samples, score on the held-out newest ones.

    ``shuffle_seed`` permutes the labels first (a control: with no signal left, the
    accuracy must fall to chance).
    """
    y = s.y if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(s.y)
    train, test = split(s, test_fraction)
    if len(np.unique(y[train])) < 2:
        raise TooLittleData("the training period holds only one direction of price moves")
    fitted = make_model(model, seed).fit(s.x[train], y[train])
    predicted = fitted.predict(s.x[test])
    truth = y[test]
    majority = int(np.bincount(y[train], minlength=2).argmax())
    side = s.x[test, FEATURE_NAMES.index("side_0")]
    reversal = (side < 0).astype(np.int64)
    precision, recall, _, support = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1], zero_division=0
    )
    return Evaluation(
        model=model,
        n_train=len(train),
        n_test=len(test),
        n_purged=int(test[0] - len(train)),
        accuracy=float(accuracy_score(truth, predicted)),
        majority=CLASSES[majority],
        majority_accuracy=float(np.mean(truth == majority)),
        reversal_accuracy=float(np.mean(truth == reversal)),
        classes=tuple(
            ClassScore(CLASSES[k], float(precision[k]), float(recall[k]), int(support[k]))
            for k in (0, 1)
        ),
        test_from_ts=int(s.ts[test[0]]),
        test_to_ts=int(s.ts[test[-1]]),
        fitted=fitted,
    )
