"""``python -m analytics report --market BTC-USD``: train on the history and report.

The database is ``--database-url``, else the project's settings (``DATABASE_URL``,
else the embedded PostgreSQL of ``./hftx run`` under ``HFTX_DATA_DIR``, wherever its
port is). Exit status
0 with a report; 1 with a message when the data is too little or unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from analytics.dataset import TooLittleData, load_trades
from analytics.features import FEATURE_NAMES
from analytics.model import MODELS
from analytics.report import as_json, as_text, build_report
from ops.settings import Settings, run_urls


def parse_time(text: str) -> int:
    """Milliseconds since the epoch from an ISO-8601 time (UTC if no zone) or an integer."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ISO-8601 or ms)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _where(url: str) -> str:
    """The database URL without its credentials, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _settings() -> Settings:
    """The project's settings, as every process reads them. A JWT secret is given so
    that a report never creates ``<data dir>/jwt_secret`` (nor the data dir itself):
    it signs nothing."""
    return Settings(jwt_secret="unused-by-analytics")


def _unreachable_hint(settings: Settings | None) -> str:
    """What to check when PostgreSQL cannot be reached."""
    if settings is not None and settings.embedded_database and not run_urls(settings.data_dir):
        return (
            f"no ./hftx run is using the data dir {settings.data_dir} (it has no urls.json):"
            " start one, set HFTX_DATA_DIR to the running exchange's data dir, or give"
            " --database-url / DATABASE_URL"
        )
    return "is the exchange running, or is --database-url / DATABASE_URL set?"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="train on a market's trades and report held-out scores")
    rep.add_argument("--market", required=True, help="market id, e.g. BTC-USD")
    rep.add_argument("--database-url", help="postgresql://... (default: the settings')")
    rep.add_argument(
        "--since",
        type=parse_time,
        default=0,
        help="first trade time: ISO-8601 (UTC if no zone) or ms since the epoch",
    )
    rep.add_argument("--until", type=parse_time, default=2**62, help="end time, exclusive")
    rep.add_argument(
        "--model", choices=MODELS, default="logistic", help="classifier (default logistic)"
    )
    rep.add_argument(
        "--test-fraction", type=float, default=0.3, help="newest share held out (default 0.3)"
    )
    rep.add_argument(
        "--save",
        nargs="?",
        const="",
        metavar="PATH",
        help="save the fitted model (joblib); default <data dir>/analytics/<market>-<model>.joblib",
    )
    rep.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = None if args.database_url else _settings()
    url = settings.database_url if settings else args.database_url
    try:
        trades = load_trades(url, args.market, args.since, args.until)
        report = build_report(trades, args.model, args.test_fraction)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"error: cannot read PostgreSQL at {_where(url)} ({first}); "
            + _unreachable_hint(settings),
            file=sys.stderr,
        )
        return 1
    except psycopg.errors.UndefinedTable:
        print(f"error: {_where(url)} has no hftx history (run the release step)", file=sys.stderr)
        return 1
    except (TooLittleData, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(as_json(report)) if args.json else as_text(report))
    if args.save is not None:
        import joblib

        name = f"{args.market}-{args.model}.joblib"
        path = Path(args.save) if args.save else _settings().data_dir / "analytics" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {
            "market": args.market,
            "features": FEATURE_NAMES,
            "model": report.evaluation.fitted,
        }
        joblib.dump(saved, path)
        print(f"model saved to {path}", file=sys.stderr)
    return 0
