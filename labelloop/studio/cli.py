"""``labelloop studio up | down | status``: the Label Studio server of a config's data dir.

(``labelloop studio demo`` runs a pipeline turn, so it lives with the ``labelloop`` command in
:mod:`labelloop.cli`; nothing here imports that module.)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from labelloop.config import load_config
from labelloop.exceptions import LabelloopError
from labelloop.studio.server import StudioServer

app = typer.Typer(help="The Label Studio server labelloop manages (under <data_dir>/studio).", no_args_is_help=True)
console = Console(soft_wrap=True)  # URLs and paths stay whole, whatever the terminal width
ConfigOption = typer.Option(Path("labelloop.yaml"), "--config", "-c", help="Pipeline config file.")


def studio_up(config_path: Path, port: int | None = None) -> StudioServer:
    """Start the config's Label Studio unless it already runs; returns it (left running)."""
    config = load_config(config_path)
    studio_dir = config.data_path / "studio"
    running = StudioServer.running(studio_dir)
    if running is not None:
        return running
    return StudioServer(studio_dir, port=port).start()


def studio_down(config_path: Path) -> bool:
    """Stop the config's Label Studio by its PID; ``False`` when none was running."""
    config = load_config(config_path)
    running = StudioServer.running(config.data_path / "studio")
    if running is None:
        return False
    running.stop()
    return True


@app.command()
def up(config: Path = ConfigOption, port: int = typer.Option(None, help="Port on 127.0.0.1 (default: a free one).")) -> None:
    """Start Label Studio in its own venv, bound to 127.0.0.1, and leave it running."""
    try:
        server = studio_up(config, port)
    except LabelloopError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2)
    console.print(f"Label Studio running at {server.url} (pid {server.pid}); log in as "
                  f"{server.credentials.email}, password in {server.studio_dir / 'credentials.json'}")


@app.command()
def down(config: Path = ConfigOption) -> None:
    """Stop the Label Studio that `labelloop studio up` started."""
    console.print("Label Studio stopped" if studio_down(config) else "no Label Studio was running")


@app.command()
def status(config: Path = ConfigOption) -> None:
    """Where the managed Label Studio runs, if it does."""
    cfg = load_config(config)
    running = StudioServer.running(cfg.data_path / "studio")
    console.print(f"Label Studio at {running.url} (pid {running.pid})" if running else "Label Studio is not running")
