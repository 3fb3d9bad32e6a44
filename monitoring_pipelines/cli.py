"""`monitoring-pipelines`: simulate demo traffic, run the monitoring assets through Dagster, manage alerts."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from monitoring_pipelines.config import PROJECT_ROOT, ConfigError, config_path_from_env, load_config


def prepare_environment(config: str | None = None) -> Path:
    """Environment every entry point shares: an absolute DAGSTER_HOME inside the project, no telemetry,
    no GX analytics, and MONITORING_CONFIG pointing at the chosen config (the definitions read it)."""
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        template = PROJECT_ROOT / "dagster_home" / "dagster.yaml"
        if template.exists() and template.resolve() != (home / "dagster.yaml").resolve():
            (home / "dagster.yaml").write_text(template.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    path = config_path_from_env(config)
    os.environ["MONITORING_CONFIG"] = str(path)
    return path


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitoring_pipelines.simulate import simulate

    config = load_config(args.config)
    out = Path(args.out) if args.out else config.data_dir
    summary = simulate(out, days=args.days, requests=args.requests, seed=args.seed)
    print(summary.describe() if hasattr(summary, "describe") else summary)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from monitoring_pipelines.runner import run_range

    config = load_config(args.config)
    models = args.model or config.model_names
    for name in models:
        config.model(name)
    if args.end < args.start:
        print(f"--end {args.end} is before --start {args.start}", file=sys.stderr)
        return 2
    report = run_range(
        config, args.start, args.end, models, progress=not args.quiet, dashboard=not args.no_dashboard
    )
    print(report.summary())
    return 0 if report.ok else 1


def cmd_reference(args: argparse.Namespace) -> int:
    from monitoring_pipelines.runner import build_references

    config = load_config(args.config)
    models = args.model or config.model_names
    for name in models:
        config.model(name)
    report = build_references(config, models)
    lines = [f"references rebuilt: {', '.join(report.rebuilt_references) or 'none'} ({report.seconds:.1f}s)"]
    if report.skipped_references:
        lines.append(f"references unchanged, not rebuilt: {', '.join(report.skipped_references)}")
    lines += [f"  FAILED: {f}" for f in report.failed]
    print("\n".join(lines))
    return 0 if report.ok else 1


def cmd_alerts(args: argparse.Namespace) -> int:
    from monitoring_pipelines import alerting_service as svc

    config = load_config(args.config)
    if args.action == "list":
        frame = svc.list_alerts(config, status=args.status, model=args.model)
        if frame.empty:
            print("no alerts")
        else:
            cols = [
                c
                for c in (
                    "alert_id",
                    "model_name",
                    "partition_date",
                    "severity",
                    "status",
                    "check_name",
                    "subject",
                    "metric",
                    "value",
                    "threshold",
                )
                if c in frame.columns
            ]
            print(frame[cols].to_string(index=False, max_colwidth=40))
        return 0
    status = {"ack": "acknowledged", "resolve": "resolved"}[args.action]
    svc.set_alert_status(config, args.id, status)
    print(f"alert {args.id} {status}")
    return 0


def cmd_items(args: argparse.Namespace) -> int:
    from monitoring_pipelines import alerting_service as svc

    config = load_config(args.config)
    if args.action == "list":
        frame = svc.list_items(config, status=args.status)
        print("no backlog items" if frame.empty else frame.to_string(index=False, max_colwidth=50))
        return 0
    if args.action == "open":
        item_id = svc.open_item(
            config,
            model_name=args.model,
            title=args.title,
            severity=args.severity,
            reported_by=args.reported_by,
        )
        print(f"backlog item {item_id} opened")
        return 0
    status = {"in-progress": "in_progress", "resolve": "resolved", "reopen": "open"}[args.action]
    svc.set_item_status(config, args.id, status)
    print(f"backlog item {args.id} {status}")
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from monitoring_pipelines.delivery import deliver_pending
    from monitoring_pipelines.storage.warehouse import Warehouse

    config = load_config(args.config)
    stats = deliver_pending(
        Warehouse(config.warehouse),
        max_attempts=config.alerting.max_attempts,
        retry_base_seconds=config.alerting.retry_base_seconds,
    )
    print(stats)
    return 0


def build_parser() -> argparse.ArgumentParser:
    config_help = "config YAML (default: $MONITORING_CONFIG or data/demo_config.yaml)"
    parser = argparse.ArgumentParser(prog="monitoring-pipelines", description=__doc__)
    parser.add_argument("--config", help=config_help)
    # --config is also accepted after the command (`run --config x.yaml …`); SUPPRESS keeps the value
    # given before the command when it is not repeated.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser(
        "simulate", parents=[common], help="write realistic demo traffic with documented incidents"
    )
    sim.add_argument("--days", type=int, default=90)
    sim.add_argument("--requests", type=int, default=5000, help="champion requests per day (credit_default)")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--out", help="data directory to write incoming/ under (default: the config's data_dir)")
    sim.set_defaults(func=cmd_simulate)

    run = sub.add_parser(
        "run", parents=[common], help="materialize every monitoring asset and check for each model-day"
    )
    run.add_argument("--start", type=_date, required=True)
    run.add_argument("--end", type=_date, required=True)
    run.add_argument("--model", action="append", help="limit to this model (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--no-dashboard", action="store_true", help="skip the dashboard/KPI run at the end")
    run.set_defaults(func=cmd_run)

    ref = sub.add_parser(
        "reference",
        parents=[common],
        help="build the reference of each model whose config or reference data changed",
    )
    ref.add_argument("--model", action="append", help="limit to this model (repeatable)")
    ref.set_defaults(func=cmd_reference)

    alerts = sub.add_parser("alerts", parents=[common], help="list, acknowledge or resolve alerts")
    asub = alerts.add_subparsers(dest="action", required=True)
    lst = asub.add_parser("list", parents=[common])
    lst.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    lst.add_argument("--model")
    for action in ("ack", "resolve"):
        p = asub.add_parser(action, parents=[common])
        p.add_argument("id")
    alerts.set_defaults(func=cmd_alerts)

    items = sub.add_parser(
        "items", parents=[common], help="backlog items: list, open (reported by a person), change status"
    )
    isub = items.add_subparsers(dest="action", required=True)
    ilst = isub.add_parser("list", parents=[common])
    ilst.add_argument("--status", choices=["open", "in_progress", "resolved"])
    iopen = isub.add_parser("open", parents=[common])
    iopen.add_argument("--model", required=True)
    iopen.add_argument("--title", required=True)
    iopen.add_argument("--severity", choices=["critical", "warning", "info"], default="warning")
    iopen.add_argument("--reported-by", default="user")
    for action in ("in-progress", "resolve", "reopen"):
        p = isub.add_parser(action, parents=[common])
        p.add_argument("id")
    items.set_defaults(func=cmd_items)

    deliver = sub.add_parser("deliver", parents=[common], help="send pending notifications from the outbox")
    deliver.set_defaults(func=cmd_deliver)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.config = str(prepare_environment(args.config))
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


def console() -> None:
    """The `monitoring-pipelines` command (and `python -m monitoring_pipelines`): main(), then every
    cleanup registered with atexit (pool joins, logging, DuckDB and Dagster handles), then exit without
    the interpreter's teardown of Dagster's, GX's and pandas's module graph: half a second of freeing
    memory the kernel takes back at once anyway. Tests call main() and keep their interpreter."""
    import atexit
    import os

    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
