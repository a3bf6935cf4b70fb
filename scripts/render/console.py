"""What a run prints while it goes: one line per cell and per ladder step, and a progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from scripts.records.records import CellRecord, OpenLoopRecord


def cell_line(record: CellRecord) -> str:
    head = f"{record.mode:<16} {record.scenario:<22} c={record.concurrency!s:<4} r{record.repeat}"
    if not record.ok:
        return f"{head} [red]FAILED[/red] {record.error}"
    lat, gen = record.latency_ms, record.generator_cpu
    return (f"{head} {record.throughput_rps or 0:>10,.0f} req/s  p50 {lat.get('p50', float('nan')):.2f} ms  "
            f"p99 {lat.get('p99', float('nan')):.2f} ms  errors {record.failures}  "
            f"{record.generator} cpu {'?' if gen is None else f'{gen:.0%}'}"
            + (f"  [yellow]{record.generator_warning}[/yellow]" if record.generator_warning else ""))


def ladder_line(record: OpenLoopRecord) -> str:
    if record.error:
        return f"open loop {record.mode:<16} FAILED {record.error}"
    lat = record.latency_ms
    return (f"open loop {record.mode:<16} offered {record.offered_rate or 0:>8,.0f}/s  achieved "
            f"{record.achieved_rate or 0:>8,.0f}/s  p50 {lat.get('p50', 0):.2f} ms  p99 {lat.get('p99', 0):.2f} ms")


def progress(console: Console) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    return Progress(*columns, console=console, transient=True)
