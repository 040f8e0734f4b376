"""inv health, inv provision, inv provision.check-iso, inv provision.router."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from invoke import Collection, Context, Exit, task
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from fabfile.engine import check_health
from fabfile.health import NodeHealth
from fabfile.inventory import load_cluster
from fabfile.iso import check_iso
from fabfile.provision import NodeProvision, provision_cluster
from fabfile.router import router_notes
from fabfile.tasks.common import clean_errors, console, error_console, option


@task(help={"cluster": "inventory file (default: cluster.yaml)", "json": "print JSON, a record per node"})
@clean_errors
def health(c: Context, cluster: str | None = None, json_: bool = False) -> None:
    """Is every node up, how fast, how loaded, which POV-Ray."""
    records = check_health(load_cluster(option(c, cluster, "cluster")))
    if json_:
        print(json.dumps([record.as_json() for record in records], indent=2))
    else:
        console.print(health_table(records))
        for record in records:
            if not record.up:
                console.print(f"{record.name} is down: {record.reason}", style="red", highlight=False)
            for problem in record.problems:
                console.print(f"{record.name} cannot render: {problem}", style="yellow", highlight=False)
    down = [record.name for record in records if not record.up]
    unready = [record.name for record in records if record.up and not record.ready]
    if down or unready:
        said = [f"{len(down)} node(s) down: {', '.join(down)}"] if down else []
        said += [f"{len(unready)} node(s) cannot render: {', '.join(unready)}"] if unready else []
        raise Exit(f"povfarm: {'; '.join(said)}", code=1)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def health_table(records: list[NodeHealth]) -> Table:
    table = Table(title="cluster health")
    numeric = ("ms per command", "ms login shell", "test render s", "cores", "mem MB", "disk MB")
    columns = ("node", "address", "state", "ms per command", "ms login shell", "POV-Ray", "test render s", "cores",
               "load", "mem MB", "disk MB")
    for column in columns:
        justify = "right" if column in numeric else "left"
        table.add_column(column, justify=justify, no_wrap=True, min_width=4)
    for r in records:
        if not r.up:
            table.add_row(r.name, r.address, "[red]down[/red]", *[""] * (len(columns) - 3))
            continue
        load = " ".join(f"{x:.1f}" for x in r.load) if r.load else "?"
        version = (r.povray or "").removeprefix("POV-Ray ") or "[red]missing[/red]"
        state = "[green]up[/green]" if r.ready else "[yellow]not ready[/yellow]"
        table.add_row(
            r.name, r.address, state, _ms(r.command_ms), _ms(r.login_shell_ms), version,
            "" if r.probe_s is None else f"{r.probe_s:.2f}", str(r.cores or "?"), load, str(r.mem_free_mb or "?"),
            str(r.disk_free_mb or "?"),
        )
    return table


@task(
    default=True,
    help={"cluster": "inventory file (default: cluster.yaml)", "dry-run": "print what would be run, per node"},
)
@clean_errors
def provision(c: Context, cluster: str | None = None, dry_run: bool = False) -> None:
    """Make every node ready: packages, POV-Ray, the work folder; idempotent."""
    inventory = load_cluster(option(c, cluster, "cluster"))
    results = provision_cluster(inventory, dry_run=dry_run, on_step=print_step)
    waiting = [r.name for r in results if r.needs_password]
    if waiting and not dry_run:
        if not sys.stdin.isatty():
            error_console.print(f"sudo needs a password on {', '.join(waiting)}; run inv provision in a terminal")
        else:
            password = getpass.getpass(f"sudo password for {', '.join(waiting)}: ")
            again = {r.name: r for r in provision_cluster(inventory, password=password, only=waiting,
                                                          on_step=print_step)}
            results = [again.get(r.name, r) for r in results]
    for result in results:
        print_provision(result, dry_run)
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise Exit(f"povfarm: provisioning failed on {', '.join(failed)}", code=1)


def print_step(node: str, text: str) -> None:
    console.print(f"{node}: {text}...", highlight=False, markup=False, style="dim")


def print_provision(result: NodeProvision, dry_run: bool) -> None:
    if not result.ok:
        console.print(f"{result.name}: [red]failed[/red]: {result.reason}", highlight=False)
    elif dry_run:
        lines = result.actions or ["nothing to run: already provisioned"]
        console.print(f"{result.name}:", highlight=False)
        for line in lines:
            console.print(f"  {line}", highlight=False, markup=False)
        return
    elif result.changed:
        console.print(f"{result.name}: changed: {'; '.join(result.actions)} ({result.povray})", highlight=False)
    else:
        console.print(f"{result.name}: ok, nothing to change ({result.povray})", highlight=False)


@task(
    name="check-iso",
    help={
        "iso": "the downloaded image",
        "sums": "the published MD5SUMS or SHA256SUMS file",
        "md5": "or the expected digest itself (MD5 or SHA-256)",
    },
)
@clean_errors
def check_iso_task(c: Context, iso: str, sums: str | None = None, md5: str | None = None) -> None:
    """Check a downloaded ISO against its published MD5 or SHA-256 sum."""
    path = Path(iso)
    size = path.stat().st_size if path.is_file() else 0
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=error_console,
    ) as progress:
        bar = progress.add_task(f"hashing {path.name}", total=size)
        result = check_iso(path, Path(sums) if sums else None, md5, lambda n: progress.advance(bar, n))
    console.print(f"{path.name}: {result.algorithm.upper()} OK ({result.actual})", highlight=False)


@task(help={"cluster": "inventory file (default: cluster.yaml)", "output": "the notes file (default: router.md)"})
@clean_errors
def router(c: Context, cluster: str | None = None, output: str = "router.md") -> None:
    """Write the DD-WRT client-mode notes for this cluster (never touches a router)."""
    inventory = load_cluster(option(c, cluster, "cluster"))
    Path(output).write_text(router_notes(inventory), encoding="utf-8")
    if not inventory.router_given:
        error_console.print(f"warning: {inventory.source} has no router: section; the notes use DD-WRT's "
                            "example LAN 192.168.2.1/24: add one with your network", style="yellow", highlight=False)
    console.print(f"wrote {output}", highlight=False)


provision_tasks = Collection("provision", provision, check_iso_task, router)
