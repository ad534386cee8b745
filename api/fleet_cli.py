"""``cvgrade worker`` and ``cvgrade fleet``: grading workers on many hosts, and the operator's view of them.

Light to import: Celery is imported inside the commands.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from grader.errors import ExitCode

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

BrokerOption = Annotated[str | None, typer.Option(
    "--broker", help="Broker URL, e.g. redis://host:6379/0 or amqp://... (default: $CVGRADE_BROKER_URL).")]


def add_fleet_commands(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("fleet")(fleet)


def _broker(url: str | None) -> str:
    broker = url or os.environ.get("CVGRADE_BROKER_URL")
    if not broker:
        errors.print("[bold red]error:[/bold red] no broker: pass --broker redis://HOST:6379/0 "
                     "or set CVGRADE_BROKER_URL")
        raise typer.Exit(ExitCode.BAD_INPUT)
    return broker


def worker(
    broker: BrokerOption = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, help="Gradings at once (default: one per GPU, or 1 on a CPU-only host).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="This worker's name in `cvgrade fleet`.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="Sandbox backend: auto, docker or local.")] = "auto",
    isolation: Annotated[str, typer.Option("--isolation", help="Local isolation: auto, bwrap or process.")] = "auto",
    visibility_timeout_s: Annotated[float, typer.Option(
        "--visibility-timeout", help="Seconds before an unacknowledged job goes to another worker; must exceed "
                                     "the longest grading.")] = 3600.0,
) -> None:
    """Grade jobs from the broker with this host's sandbox, until SIGTERM (running gradings finish first)."""
    from api.jobs.fleet_grader import hardware, resolve_settings, run_fleet_grader
    from harness.janitor import clean_up_after_crashed_graders

    settings = resolve_settings(backend=backend, isolation=isolation)
    facts = hardware()
    errors.print(f"cvgrade worker: {facts['gpus']} GPU(s) {', '.join(facts['gpu_names'])}; "
                 f"queues {', '.join(facts['queues'])}; sandbox {backend}")
    for note in clean_up_after_crashed_graders(containers=backend != "local").notes():  # a grader died
        errors.print(note)
    run_fleet_grader(_broker(broker), settings, concurrency=concurrency, name=name,
                     visibility_timeout_s=visibility_timeout_s)


def fleet(
    broker: BrokerOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the view as JSON.")] = False,
) -> None:
    """Workers and their hardware, queue depth per hardware class, and recent throughput."""
    from api.jobs.broker import fleet_view, make_celery

    try:
        view = fleet_view(make_celery(_broker(broker)))
    except Exception as err:
        errors.print(f"[bold red]error:[/bold red] cannot read the fleet from the broker: {err}")
        raise typer.Exit(ExitCode.OUR_FAILURE) from None
    if as_json:
        console.print_json(json.dumps(view))
        return
    table = Table(title="Workers", title_justify="left")
    for column in ("name", "class", "GPUs", "concurrency", "queues"):
        table.add_column(column)
    for entry in view["workers"]:
        gpus = f"{entry['gpus']} ({'; '.join(entry.get('gpu_names', []))})" if entry["gpus"] else "0"
        table.add_row(entry["name"], entry["hardware_class"], gpus, str(entry.get("concurrency", "?")),
                      ", ".join(entry["queues"]))
    console.print(table)
    if not view["workers"]:
        console.print("[yellow]no worker is connected[/yellow]")
    depth = ", ".join(f"{queue}: {count}" for queue, count in view["queue_depth"].items())
    console.print(f"queued: {depth}")
    console.print(f"finished: {view['finished_last_minute']} in the last minute, "
                  f"{view['finished_last_hour']} in the last hour")

