"""`monitoring-pipelines`: simulate demo traffic, run the monitoring assets through Dagster, manage alerts."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from monitoring_pipelines.config import PROJECT_ROOT, ConfigError, config_path_from_env, load_config

# The instance on PostgreSQL (deploy/dagster.postgres.yaml), chosen by DAGSTER_PG_URL when DAGSTER_HOME is unset.
POSTGRES_HOME = PROJECT_ROOT / "dagster_home" / "postgres"
POSTGRES_TEMPLATE = PROJECT_ROOT / "deploy" / "dagster.postgres.yaml"


def prepare_environment(config: str | None = None) -> Path:
    """Environment every entry point shares: an absolute DAGSTER_HOME inside the project, no telemetry,
    no GX analytics, and MONITORING_CONFIG pointing at the chosen config (the definitions read it).
    DAGSTER_PG_URL set (and DAGSTER_HOME not): the instance is the PostgreSQL one (dagster_home/postgres)."""
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    postgres = bool(os.environ.get("DAGSTER_PG_URL"))
    default_home = POSTGRES_HOME if postgres else PROJECT_ROOT / "dagster_home"
    home = Path(os.environ.get("DAGSTER_HOME") or default_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        template = POSTGRES_TEMPLATE if postgres else PROJECT_ROOT / "dagster_home" / "dagster.yaml"
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
    from monitoring_pipelines import simulate as sim

    out = Path(args.out) if args.out else _demo_data_dir(args.config)
    if getattr(args, "live", False):
        return _simulate_live(args, out)
    unknown = sorted(set(args.model or []) - set(sim.MODEL_NAMES))
    if unknown:
        print(f"error: unknown demo model(s) {unknown} (known: {', '.join(sim.MODEL_NAMES)})")
        return 2
    summary = sim.simulate(
        out,
        days=args.days,
        requests=args.requests,
        seed=args.seed,
        start=_sim_start(args),
        models=args.model or None,
        reference_days=args.reference_days,
    )
    print(summary.describe())
    return 0


def _simulate_live(args: argparse.Namespace, out: Path) -> int:
    """`simulate --live`: play the day after the simulated range (today, after `make demo`) in small files
    on an accelerated clock, so the intraday watch of `make ui` alerts while it runs (docs/demo.md)."""
    import signal

    from monitoring_pipelines import simulate as sim

    manifest = sim.read_manifest(out)
    if manifest is None:
        print(f"error: no simulation under {out}: run `make demo` (or `monitoring-pipelines simulate`) first")
        return 2
    models = args.model or ["credit_default"]
    if any(m in sim.TASK_MODELS for m in models):
        print("error: --live plays binary_classification models only (the intraday watch is for them)")
        return 2
    day = manifest["end"] + dt.timedelta(days=1)
    print(
        f"live day {day} at {args.speed:g}x from {args.from_time:%H:%M} UTC: a file every {args.step_minutes} "
        f"simulated minutes under {out / 'incoming'}; `make ui` in another terminal shows the intraday "
        "looks (asset intraday_today) and their alerts. Ctrl-C stops."
    )

    def stop(signum: int, frame: object) -> None:  # `kill` ends it like Ctrl-C: the clock file goes
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        live = sim.simulate_live(
            out,
            day,
            manifest["start"],
            models=models,
            speed=args.speed,
            step_minutes=args.step_minutes,
            from_time=args.from_time,
            requests=manifest.get("requests", args.requests),
            seed=manifest.get("seed", args.seed),
        )
    except KeyboardInterrupt:
        print("stopped; the clock file is removed")
        return 130
    print(live.describe())
    return 0


def _time_of_day(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day HH:MM") from exc


def _sim_start(args: argparse.Namespace) -> dt.date:
    """First simulated day: --start as given (fixed dates, reproducible), else the --days ending --end
    (default yesterday, UTC)."""
    from monitoring_pipelines.simulate import default_end

    if args.start:
        return args.start
    return (args.end or default_end()) - dt.timedelta(days=args.days - 1)


def _demo_data_dir(config: str) -> Path:
    """Where demo traffic goes: the config's data_dir, or the config's folder while it does not exist
    yet (a fresh clone: `simulate` writes data/demo_config.yaml there)."""
    path = Path(config)
    return load_config(path).data_dir if path.exists() else path.parent


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo in one command: simulate (unless done), run the simulated range, say what to look at."""
    from monitoring_pipelines import simulate as sim
    from monitoring_pipelines.runner import run_range

    out = _demo_data_dir(args.config)
    manifest = sim.read_manifest(out)
    if manifest is None or not (out / "incoming").is_dir() or not Path(args.config).exists():
        summary = sim.simulate(
            out, days=args.days, requests=args.requests, start=_sim_start(args), models=args.model or None
        )
        print(summary.describe())
        manifest = sim.read_manifest(out)
        if summary.config_path and summary.config_path.resolve() != Path(args.config).resolve():
            print(f"note: {args.config} is not the config written for this traffic ({summary.config_path})")
    if manifest is None:
        print(f"error: no readable {sim.MANIFEST_NAME} under {out} after simulating", file=sys.stderr)
        return 1
    lag = (sim.default_end() - manifest["end"]).days
    if lag > 0:
        print(
            f"note: the demo traffic ends {manifest['end']}, {lag} day(s) before yesterday; "
            "`make clean-demo demo` simulates traffic ending yesterday"
        )
    config = load_config(args.config)
    report = run_range(
        config, manifest["start"], manifest["end"], config.model_names, progress=not args.quiet
    )
    print(report.summary())
    print(first_look(config))
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(first_look(config, ui_url=args.ui_url))
    return 0


def first_look(config, ui_url: str | None = None) -> str:  # noqa: ANN001 - MonitoringConfig
    from monitoring_pipelines.runner import first_look_lines

    return "\n".join(first_look_lines(config, ui_url))


def cmd_run(args: argparse.Namespace) -> int:
    from monitoring_pipelines.runner import run_range

    config = load_config(args.config)
    models = args.model or config.model_names
    for name in models:
        config.model(name)
    if args.end < args.start:
        print(f"--end {args.end} is before --start {args.start}", file=sys.stderr)
        return 2
    if args.submit:
        from monitoring_pipelines.runner import submit_range

        backfill_id, partitions = submit_range(config, args.start, args.end, models)
        print(
            f"queued backfill {backfill_id}: {len(partitions)} model-days ({args.start} .. {args.end}, "
            f"{', '.join(models)}); the daemon launches its runs (Dagster UI: /overview/backfills/{backfill_id})"
        )
        return 0
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


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _print_json(payload: object) -> None:
    import json

    print(json.dumps(payload, indent=2, default=str))


def cmd_alerts(args: argparse.Namespace) -> int:
    from monitoring_pipelines import alerting_service as svc
    from monitoring_pipelines import oncall

    config = load_config(args.config)
    ui = config.alerting.ui_base_url
    if args.action == "list":
        frame = svc.list_alerts(config, status=args.status, model=args.model)
        if args.json:
            _print_json(oncall.records(frame))
        else:
            print(oncall.alerts_table(frame, _today(), ui))
        return 0
    if args.action == "show":
        frame = svc.list_alerts(config)
        match = frame[frame["alert_id"] == args.id]
        if match.empty:
            print(f"error: no alert {args.id!r} (`monitoring-pipelines alerts list`)", file=sys.stderr)
            return 2
        alert = match.iloc[0].to_dict()
        items = svc.list_items(config)
        owning = items[[args.id in oncall.alert_ids(i) for i in items.to_dict("records")]]
        if args.json:
            _print_json({"alert": oncall.records(match)[0], "items": oncall.records(owning)})
        else:
            incident = alert.get("incident_id")
            members = frame[frame["incident_id"] == incident] if "incident_id" in frame and incident else None
            item = owning.iloc[0].to_dict() if len(owning) else None
            print(oncall.alert_detail(alert, item, _today(), ui, members))
        return 0
    status = {"ack": "acknowledged", "resolve": "resolved"}[args.action]
    svc.set_alert_status(config, args.id, status)
    print(f"alert {args.id} {status}")
    return 0


def cmd_items(args: argparse.Namespace) -> int:
    from monitoring_pipelines import alerting_service as svc
    from monitoring_pipelines import oncall

    config = load_config(args.config)
    if args.action == "list":
        frame = svc.list_items(config, args.status, args.model)
        if args.json:
            _print_json(oncall.records(frame))
        else:
            print(oncall.items_table(frame))
        return 0
    if args.action == "show":
        items = svc.list_items(config)
        match = items[items["item_id"] == args.id]
        if match.empty:
            print(f"error: no backlog item {args.id!r} (`monitoring-pipelines items list`)", file=sys.stderr)
            return 2
        item = match.iloc[0].to_dict()
        alerts = svc.list_alerts(config)
        mine = alerts[alerts["alert_id"].isin(oncall.alert_ids(item))] if len(alerts) else alerts
        if args.json:
            _print_json({"item": oncall.records(match)[0], "alerts": oncall.records(mine)})
        else:
            print(oncall.item_detail(item, mine))
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


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config (a ConfigError exits 2 with the message) and say what it describes."""
    from monitoring_pipelines.storage.sources import source_for

    config = load_config(args.config)
    print(f"config OK: {config.config_path}")
    from monitoring_pipelines.storage.warehouse import shown

    print(f"  data: {config.input_url or config.data_dir}   warehouse: {shown(config.warehouse)}")
    for model in config.models:
        features = len(model.features.numeric) + len(model.features.categorical)
        source = type(source_for(config, model)).__name__
        print(
            f"  {model.name}: {model.task}, {features} features, {len(model.segments)} segments, reference "
            f"{model.reference.start} .. {model.reference.end}, labels after {model.label_delay_days} days, "
            f"source {source}, owner {model.owner}"
        )
    routes = ", ".join(
        f"{sev} -> {'/'.join(chans) or 'none'}" for sev, chans in config.alerting.routes.items()
    )
    print(f"  alert routes: {routes}")
    return 0


DELIVERY_BUSY_EXIT = 75  # EX_TEMPFAIL (sysexits.h): another delivery run holds the outbox; try again later


def cmd_deliver(args: argparse.Namespace) -> int:
    """Exit 0 after a run, 75 (EX_TEMPFAIL, "try again later") when another run holds the outbox:
    nothing was sent by this call, yet nothing is wrong (docs/operating.md)."""
    from monitoring_pipelines.delivery import DeliveryBusy, deliver_pending
    from monitoring_pipelines.storage.warehouse import Warehouse

    config = load_config(args.config)
    try:
        stats = deliver_pending(
            Warehouse.for_config(config),
            max_attempts=config.alerting.max_attempts,
            retry_base_seconds=config.alerting.retry_base_seconds,
        )
    except DeliveryBusy as exc:
        print(f"{exc}. That run sends what is due; this one sent nothing.", file=sys.stderr)
        return DELIVERY_BUSY_EXIT
    print(stats)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("monitoring_pipelines")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _simulated_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=90, help="days of traffic (default 90)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--end", type=_date, help="last simulated day (default: yesterday, UTC)")
    when.add_argument(
        "--start", type=_date, help="first simulated day, for fixed dates (the docs and tests use 2026-06-01)"
    )


def build_parser() -> argparse.ArgumentParser:
    config_help = "config YAML (default: $MONITORING_CONFIG or data/demo_config.yaml)"
    parser = argparse.ArgumentParser(prog="monitoring-pipelines", description=__doc__)
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # --config is also accepted after the command (`run --config x.yaml …`); SUPPRESS keeps the value
    # given before the command when it is not repeated.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser(
        "simulate", parents=[common], help="write realistic demo traffic with documented incidents"
    )
    _simulated_range(sim)
    sim.add_argument("--requests", type=int, default=5000, help="champion requests per day (credit_default)")
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7): same seed, same files")
    sim.add_argument(
        "--out",
        help="data directory to write incoming/, demo_config.yaml and simulation.json under "
        "(default: the config's data_dir)",
    )
    sim.add_argument(
        "--live",
        action="store_true",
        help="play the day after the simulated range in small files on an accelerated clock, for the "
        "intraday watch (docs/demo.md); needs a simulation first",
    )
    sim.add_argument(
        "--speed", type=float, default=60.0, help="--live: simulated seconds per real second (60)"
    )
    sim.add_argument(
        "--step-minutes", type=int, default=5, help="--live: simulated minutes per small file (5)"
    )
    sim.add_argument(
        "--from",
        dest="from_time",
        type=_time_of_day,
        default=dt.time(9, 0),
        help="--live: simulated time the clock starts at; earlier rows are written at once (09:00)",
    )
    sim.add_argument(
        "--model",
        action="append",
        help="a demo model to simulate, repeatable (default: all four; --live: credit_default)",
    )
    sim.add_argument(
        "--reference-days",
        type=int,
        default=28,
        help="days at the start that are the config's reference window and stay clean (default 28)",
    )
    sim.set_defaults(func=cmd_simulate)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="simulate demo traffic (unless already there), run its whole range, say what to look at first",
    )
    _simulated_range(demo)
    demo.add_argument("--requests", type=int, default=5000, help="champion requests per day (credit_default)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument(
        "--model", action="append", help="a demo model to simulate, repeatable (default: all four)"
    )
    demo.set_defaults(func=cmd_demo)

    status = sub.add_parser(
        "status",
        parents=[common],
        help="what to look at first: the open critical incident per model, the dashboard, the UI page",
    )
    status.add_argument(
        "--ui-url", help="the Dagster UI's address (default: the config's alerting.ui_base_url)"
    )
    status.set_defaults(func=cmd_status)

    run = sub.add_parser(
        "run", parents=[common], help="materialize every monitoring asset and check for each model-day"
    )
    run.add_argument("--start", type=_date, required=True, help="first model-day (YYYY-MM-DD, UTC)")
    run.add_argument("--end", type=_date, required=True, help="last model-day, included")
    run.add_argument("--model", action="append", help="limit to this model (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--no-dashboard", action="store_true", help="skip the dashboard/KPI run at the end")
    run.add_argument(
        "--submit",
        action="store_true",
        help="queue the range as a Dagster backfill in the instance instead of running it here "
        "(the daemon and the run launcher run it: a cluster's workers, docs/scaling.md)",
    )
    run.set_defaults(func=cmd_run)

    ref = sub.add_parser(
        "reference",
        parents=[common],
        help="build the reference of each model whose config or reference data changed",
    )
    ref.add_argument("--model", action="append", help="limit to this model (repeatable)")
    ref.set_defaults(func=cmd_reference)

    alerts = sub.add_parser("alerts", parents=[common], help="list, show, acknowledge or resolve alerts")
    asub = alerts.add_subparsers(dest="action", required=True)
    lst = asub.add_parser(
        "list", parents=[common], help="one line per alert: severity, first seen, days open, what, link"
    )
    lst.add_argument(
        "--status", choices=["open", "acknowledged", "resolved"], help="only alerts in this state"
    )
    lst.add_argument("--model", help="only this model's alerts")
    lst.add_argument("--json", action="store_true", help="the alert rows as JSON, for scripts")
    show = asub.add_parser(
        "show", parents=[common], help="one alert in words: evidence, what to do next, links"
    )
    show.add_argument("id", help="the alert id (alr_…)")
    show.add_argument("--json", action="store_true", help="the alert and its backlog item as JSON")
    for action, what in (("ack", "acknowledge: someone is on it"), ("resolve", "resolve by hand")):
        p = asub.add_parser(action, parents=[common], help=what)
        p.add_argument("id", help="the alert id (alr_…)")
    alerts.set_defaults(func=cmd_alerts)

    items = sub.add_parser(
        "items", parents=[common], help="backlog items: list, open (reported by a person), change status"
    )
    isub = items.add_subparsers(dest="action", required=True)
    ilst = isub.add_parser("list", parents=[common], help="one line per item, titles in full")
    ilst.add_argument(
        "--status", choices=["open", "in_progress", "resolved"], help="only items in this state"
    )
    ilst.add_argument("--model", help="only this model's items")
    ilst.add_argument("--json", action="store_true", help="the item rows as JSON, for scripts")
    ishow = isub.add_parser("show", parents=[common], help="one item: its alerts, failing model-days, links")
    ishow.add_argument("id", help="the item id (itm_…)")
    ishow.add_argument("--json", action="store_true", help="the item and its alerts as JSON")
    iopen = isub.add_parser("open", parents=[common], help="record an incident a person noticed")
    iopen.add_argument("--model", required=True, help="the model it is about")
    iopen.add_argument("--title", required=True, help="one line saying what is wrong")
    iopen.add_argument(
        "--severity", choices=["critical", "warning", "info"], default="warning", help="default warning"
    )
    iopen.add_argument("--reported-by", default="user", help="who noticed it (default: user)")
    for action, what in (
        ("in-progress", "someone works on it"),
        ("resolve", "fixed"),
        ("reopen", "not fixed after all"),
    ):
        p = isub.add_parser(action, parents=[common], help=what)
        p.add_argument("id", help="the item id (itm_…)")
    items.set_defaults(func=cmd_items)

    check = sub.add_parser(
        "check-config", parents=[common], help="validate the config and say what it describes; runs nothing"
    )
    check.set_defaults(func=cmd_check_config)

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

    try:
        code = main()
    except BrokenPipeError:  # `alerts list | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
