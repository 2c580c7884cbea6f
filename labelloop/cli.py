"""The ``labelloop`` command."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelloop.config import load_config
from labelloop.exceptions import LabelloopError
from labelloop.runtime import prepare_prefect_env

app = typer.Typer(help="labelloop: a data-labeling and semi-supervised pipeline on Prefect.", no_args_is_help=True)
console = Console()

ConfigOption = typer.Option(Path("labelloop.yaml"), "--config", "-c", help="Pipeline config file.")


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def init(directory: Path = typer.Argument(Path("."), help="Where to write labelloop.yaml.")) -> None:
    """Write a commented example config."""
    target = directory / "labelloop.yaml"
    if target.exists():
        _fail(LabelloopError(f"{target}: already exists; not overwritten"))
    directory.mkdir(parents=True, exist_ok=True)
    template = importlib.resources.files("labelloop").joinpath("templates/labelloop.yaml").read_text(encoding="utf-8")
    target.write_text(template, encoding="utf-8")
    console.print(f"wrote {target}")


def _use_running_server(config) -> None:
    """Point Prefect at the server `labelloop up` started for this project, so the turn shows in its UI."""
    import os

    if os.environ.get("PREFECT_API_URL"):
        return  # the user chose a server
    from labelloop.ops.services import current_api_url

    api_url = current_api_url(config)
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
        console.print(f"using the Prefect server started by `labelloop up`: {api_url.removesuffix('/api')}")


def _run_turn(config_path: Path) -> dict:
    try:
        config = load_config(config_path)
    except LabelloopError as exc:
        _fail(exc)
    prepare_prefect_env(config.data_path)
    _use_running_server(config)
    from labelloop.flows.pipeline import STAGE_LISTENERS, pipeline

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("pipeline turn: starting Prefect", total=None)

        def listener(stage: str, event: str) -> None:
            if event == "start":
                progress.update(bar, description=f"pipeline turn: {stage}")
            else:
                progress.advance(bar)
                progress.console.log(f"stage {stage} {'done' if event == 'end' else event}")

        STAGE_LISTENERS.append(listener)
        try:
            return pipeline(str(config_path.resolve()))
        except LabelloopError as exc:
            _fail(exc)
        finally:
            STAGE_LISTENERS.remove(listener)
    return {}


@app.command()
def run(config: Path = ConfigOption) -> None:
    """Run one pipeline turn (ephemeral Prefect unless PREFECT_API_URL points at a server)."""
    result = _run_turn(config)
    console.print(f"[green]turn {result.get('run_id')} completed[/]")


@app.command()
def collect(config: Path = ConfigOption) -> None:
    """Run the collect stage alone: crawl collect.sites into the store, with live crawl figures."""
    cfg = _load(config)
    if not cfg.collect.sites:
        _fail(LabelloopError(f"{config}: collect.sites is empty; nothing to crawl"))
    prepare_prefect_env(cfg.data_path)
    _use_running_server(cfg)
    from labelloop.flows.scheduled import run_stage
    from labelloop.tasks.collect import CRAWL_LISTENERS

    limits = {s.name: s.max_pages for s in cfg.collect.sites}
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[figures]}"),
        TimeElapsedColumn(), console=console,
    )
    bars: dict[str, int] = {}
    with progress:
        starting = progress.add_task("collect: starting Prefect", total=None, figures="")

        def listener(site: str, report) -> None:
            if site not in bars:
                progress.update(starting, visible=False)
                bars[site] = progress.add_task(site, total=limits.get(site), figures="")
            progress.update(bars[site], completed=report.pages_fetched + report.pages_not_modified,
                            figures=crawl_figures(report))

        CRAWL_LISTENERS.append(listener)
        try:
            result = run_stage(str(config.resolve()), "collect")
        except LabelloopError as exc:
            _fail(exc)
        finally:
            CRAWL_LISTENERS.remove(listener)
    summary = result["collect"]
    table = Table(title=f"collect: run {result['run_id'][:12]}")
    columns = ("site", "pages", "pages/s", "not modified", "items stored", "already stored", "skipped: robots",
               "skipped: scope", "errors", "pending left")
    for column in columns:
        table.add_column(column, justify="left" if column == "site" else "right")
    for r in summary["reports"]:
        table.add_row(
            r["crawl"], str(r["pages_fetched"]), f"{r['pages_per_second']:.1f}", str(r["pages_not_modified"]),
            str(r["items_added"]), str(r["items_existing"]), str(r["skipped"].get("robots", 0)),
            str(_scope_skips(r["skipped"], r["links_skipped"])), str(sum(r["failed"].values())), str(r["pending_left"]),
        )
    console.print(table)
    console.print(f"[green]collect {result['run_id']} completed[/]")


def _scope_skips(skipped: dict, links_skipped: dict) -> int:
    return skipped.get("out_of_scope", 0) + links_skipped.get("out_of_scope", 0)


def crawl_figures(report) -> str:
    """One line of live crawl figures for the progress bar."""
    return (
        f"{report.pages_fetched + report.pages_not_modified} pages, "
        f"{(report.pages_fetched + report.pages_not_modified) / max(report.elapsed_so_far, 1e-9):.1f}/s, "
        f"{report.items_added} items stored; skipped: robots {report.skipped.get('robots', 0)}, "
        f"scope {_scope_skips(report.skipped, report.links_skipped)}, errors {sum(report.failed.values())}"
    )


def _load(config: Path):
    try:
        return load_config(config)
    except LabelloopError as exc:
        _fail(exc)


@app.command()
def up(
    config: Path = ConfigOption,
    studio: Optional[bool] = typer.Option(
        None, "--studio/--no-studio", help="Start Label Studio (default: when crowd.enabled)."
    ),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Start a process worker on schedule.work_pool."),
) -> None:
    """Start the Prefect server, its work pool and worker, and Label Studio (idempotent)."""
    cfg = _load(config)
    from labelloop.ops import up as ops_up

    with console.status("starting services (a Prefect server takes 5-40 s)"):
        try:
            state = ops_up(cfg, studio=studio, worker=worker)
        except LabelloopError as exc:
            _fail(exc)
    started = ", ".join(state.started) or "nothing (already running)"
    console.print(f"started: {started}")
    for name, url in state.urls.items():
        console.print(f"  {name}: [link={url}]{url}[/link]")
    if state.server:
        console.print(f"  use it from a shell: export PREFECT_API_URL={state.server.api_url}")
    console.print(f"  logs: {cfg.data_path / 'prefect' / 'server.log'}, {cfg.data_path / 'prefect-worker'}")


@app.command()
def down(config: Path = ConfigOption) -> None:
    """Stop what `labelloop up` started (by process id)."""
    cfg = _load(config)
    from labelloop.ops import down as ops_down

    try:
        stopped = ops_down(cfg)
    except LabelloopError as exc:
        _fail(exc)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def deploy(config: Path = ConfigOption) -> None:
    """Register the deployments of deploy/prefect.yaml (crons from the config's schedule section)."""
    cfg = _load(config)
    from labelloop.ops import deploy as ops_deploy

    with console.status("registering deployments"):
        try:
            result = ops_deploy(cfg)
        except LabelloopError as exc:
            _fail(exc)
    table = Table(title=f"deployments ({result.prefect_file})")
    table.add_column("deployment")
    table.add_column("schedule")
    for name in result.deployments:
        table.add_row(name, result.schedules.get(name, "-"))
    console.print(table)
    for stage, why in result.skipped.items():
        console.print(f"  skipped {stage}: {why}")
    for name in result.automations:
        console.print(f"  automation: {name}")


@app.command()
def status(config: Path = ConfigOption, runs: int = typer.Option(3, help="Last runs shown per deployment.")) -> None:
    """What runs, the last runs of each deployment, queue sizes and label counts."""
    cfg = _load(config)
    from labelloop.ops import status as ops_status
    from labelloop.reporting import label_summary
    from labelloop.store import Store

    try:
        info = ops_status(cfg, runs_per_deployment=runs)
        store = Store(cfg.store_url).create()
        summary = label_summary(store, cfg)
        recent = store.runs(limit=5)
        store.close()
    except LabelloopError as exc:
        _fail(exc)
    services = Table(title="services")
    for column in ("service", "running", "pid", "url", "log"):
        services.add_column(column)
    for row in info["services"]:
        services.add_row(row["service"], "[green]yes[/]" if row["running"] else "[red]no[/]", str(row["pid"]),
                         str(row["url"]), str(row["log"]))
    if info["services"]:
        console.print(services)
    else:
        console.print("services: none started (`labelloop up`)")
    if info.get("prefect_error"):
        console.print(f"[red]Prefect API:[/] {info['prefect_error']}")
    if info["deployments"]:
        deployments = Table(title="deployments: last runs")
        for column in ("deployment", "schedule", "last runs", "next run"):
            deployments.add_column(column)
        for row in info["deployments"]:
            last = ", ".join(f"{r['state']} {str(r['start'] or '')[:19]}" for r in row["last_runs"]) or "-"
            deployments.add_row(row["deployment"], row["schedule"], last, str(row["next"] or "-")[:19])
        console.print(deployments)
    if info["queues"]:
        queues = Table(title="annotation queues")
        for column in ("queue", "state", "tasks"):
            queues.add_column(column)
        for row in info["queues"]:
            queues.add_row(str(row["queue"]), str(row["state"]), str(row["tasks"]))
        console.print(queues)
    table = Table(title=f"{cfg.dataset.name}: training labels by class and winning source")
    columns = list(summary["per_class"][0]) if summary["per_class"] else []
    for column in columns:
        table.add_column(column, justify="right" if column != "class" else "left")
    for row in summary["per_class"]:
        table.add_row(*[str(row[c]) for c in columns])
    console.print(table)
    console.print(f"items {summary['items']}, labeled {summary['resolved']}, unlabeled {summary['unlabeled']}; "
                  f"label rows by kind: {info['label_counts'] or '{}'}")
    run_table = Table(title="last runs (store)")
    for column in ("id", "kind", "status", "started_at", "finished_at"):
        run_table.add_column(column)
    for row in recent.to_dict("records"):
        run_table.add_row(row["id"][:12], row["kind"], row["status"], str(row["started_at"])[:19], str(row["finished_at"])[:19])
    console.print(run_table)


@app.command()
def demo(
    directory: Path = typer.Argument(Path("demo"), help="Where to write the digits example and its data."),
    gold_fraction: float = typer.Option(0.05, help="Share of items that keep their gold label."),
    turns: int = typer.Option(3, min=1, help="Pipeline turns; a simulated team answers the queues in between."),
    crowd_noise: float = typer.Option(0.2, help="Share of wrong answers of each simulated crowd worker."),
) -> None:
    """Write the digits example into DIRECTORY and run TURNS turns of the closed loop on it."""
    from labelloop.demo import write_digits_example

    config_path = write_digits_example(directory, gold_fraction=gold_fraction, loop=True)
    console.print(f"digits example written to {directory} ({config_path.name})")
    prepare_prefect_env(load_config(config_path).data_path)
    from labelloop.simulation import simulate

    columns = ["turn", "labels bought", "pseudo-labels", "pseudo acc", "training labels", "label acc", "model acc"]
    curve = Table(title="learning curve (accuracy against the hidden truth)")
    for column in columns:
        curve.add_column(column, justify="right")

    def show(row: dict) -> None:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        curve.add_row(*cells)
        console.print(f"turn {row['turn']}: model accuracy {row['model acc']:.3f} after {row['labels bought']} labels bought")

    try:
        with console.status("running the loop (Prefect starts on the first turn)"):
            simulate(config_path, turns=turns, crowd_noise=crowd_noise, on_turn=show)
    except LabelloopError as exc:
        _fail(exc)
    console.print(curve)
    console.print(f"[green]demo completed[/]; see `labelloop status -c {config_path}`")


from labelloop.studio.cli import app as _studio_app  # noqa: E402
from labelloop.studio.cli import studio_up  # noqa: E402

app.add_typer(_studio_app, name="studio")


@_studio_app.command("demo")
def studio_demo(directory: Path = typer.Argument(Path("demo-crowd"), help="Where to write the digits example.")) -> None:
    """The digits example with a crowd round: Label Studio started, bots answer, see it in the UI."""
    from labelloop.demo import write_digits_example
    from labelloop.simulation import simulated_team

    config_path = write_digits_example(directory, crowd=True)
    try:
        server = studio_up(config_path)
    except LabelloopError as exc:
        _fail(exc)
    with simulated_team():  # the bots answer between the round's push and its sync
        result = _run_turn(config_path)
    crowd = result.get("crowd", {})
    console.print(f"crowd round: {crowd.get('pushed', {}).get('pushed', 0)} tasks pushed, "
                  f"{crowd.get('synced', 0)} answers synced, flagged: {', '.join(crowd.get('flagged', [])) or 'none'}")
    console.print(f"open {server.url} (log in as {server.credentials.email}; password in "
                  f"{server.studio_dir / 'credentials.json'}); stop it with "
                  f"`labelloop studio down -c {config_path}`")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
