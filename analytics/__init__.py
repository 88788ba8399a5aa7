"""Analytics: predict the next price move from the exchange's own trade history.

The pipeline, one module per step:

- :mod:`analytics.dataset` reads a market's trades from PostgreSQL (integers);
- :mod:`analytics.prints` groups them into prints, one per taker order (pure);
- :mod:`analytics.features` turns prints into features and labels (pure);
- :mod:`analytics.model` splits by time, trains and evaluates (scikit-learn);
- :mod:`analytics.report` formats the result; ``python -m analytics report``.

See docs/analytics.md.
"""

from analytics.dataset import TooLittleData, Trades, load_trades
from analytics.features import FEATURE_NAMES, Samples, feature_matrix, next_move, samples
from analytics.model import Evaluation, evaluate
from analytics.prints import Prints, to_prints

__all__ = [
    "FEATURE_NAMES",
    "Evaluation",
    "Prints",
    "Samples",
    "TooLittleData",
    "Trades",
    "evaluate",
    "feature_matrix",
    "load_trades",
    "next_move",
    "samples",
    "to_prints",
]
