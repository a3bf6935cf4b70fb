"""An estimate past this machine, labelled as one: what the best setting would serve on N cores and M GiB.

The assumption, stated in every report: capacity scales with the CPU the server gets, at the CPU per request
measured here (capacity = cores x 1000 / CPU ms per request, less the share of the CPU the latency target leaves
idle here), and memory grows by the memory per process measured here for each process the larger machine runs
(workers scaled by cores / server CPUs), until M GiB is used.
"""

from __future__ import annotations

from dataclasses import dataclass

ASSUMPTION = ("capacity scales with cores at the CPU per request measured here, at the CPU utilisation the best "
              "setting reached here; workers scale with cores; memory grows by the memory per process measured here; "
              "the disk, network and the app's upstreams are assumed not to be the limit")


@dataclass(frozen=True, kw_only=True, slots=True)
class Estimate:
    cores: int
    memory_gib: float | None
    workers: int | None
    capacity_rps: float
    memory_mb: float
    memory_bound: bool  # the memory, not the cores, limits the workers


def utilisation(capacity_rps: float, cpu_ms_per_request: float, server_cpus: float) -> float:
    """The share of the server CPUs the best setting used at its capacity."""
    return min(1.0, capacity_rps * cpu_ms_per_request / 1000 / server_cpus)


def estimate(*, capacity_rps: float, cpu_ms_per_request: float, memory_mb: float, processes: int,
             server_cpus: float, workers: int | None, cores: int, memory_gib: float | None) -> Estimate:
    per_process = memory_mb / max(processes, 1)
    scale = cores / server_cpus
    new_workers = max(1, round(workers * scale)) if workers else None
    extra = (new_workers - workers) if workers and new_workers else 0
    memory_bound = False
    if memory_gib is not None and workers and per_process > 0:
        room = int((memory_gib * 1024 - memory_mb) / per_process) + workers
        if room < (new_workers or 0):
            memory_bound, new_workers, extra = True, max(1, room), max(1, room) - workers
    share = (new_workers / workers) / scale if workers and new_workers else 1.0
    use = utilisation(capacity_rps, cpu_ms_per_request, server_cpus)
    capacity = cores * 1000 / cpu_ms_per_request * use * min(1.0, share) if cpu_ms_per_request > 0 else 0.0
    return Estimate(cores=cores, memory_gib=memory_gib, workers=new_workers, capacity_rps=round(capacity, 1),
                    memory_mb=round(memory_mb + extra * per_process, 1), memory_bound=memory_bound)
