"""Spread one load run over several processes (one per core) and merge what they measured exactly.

One Python process sends what one core can (``ONE_CORE_RATE``); a higher rate needs more cores.
Each worker process runs a ``Share`` of the same schedule: worker *k* of *n* sends requests
*k*, *k + n*, *k + 2n*, … of the open-loop schedule, each at its own intended time, and takes its
part of the connections, virtual users and ``max_requests``. All workers start from one ``t0``
on ``time.monotonic()``, a clock every process of the machine shares. Their tallies are added
up: histogram counters bucket by bucket (same layout, so the merged percentiles are exactly
those of one histogram fed every latency), counts, statuses and error kinds by key.

Workers are started with ``spawn`` (never ``fork``: the caller may run threads, e.g. a web
server), say when they are ready, get ``t0`` and a deadline, report progress about four times a
second and send their tally at the end. A worker that dies or goes silent past the deadline
ends the run with ``RuntimeError``: a run that lost part of its measurements is not reported.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection, wait

from sluice.loadgen.engine import ProgressCallback, Share, Tally, new_loop, report, run_share, wall_offset
from sluice.loadgen.model import LoadProfile, LoadReport

#: How long a worker process may take to start (import, event loop) before the run fails.
START_TIMEOUT_S = 60.0
#: The workers start sending this long after the last one said it is ready.
START_MARGIN_S = 0.05


def _worker(pipe: Connection, base_url: str, profile: LoadProfile, share: Share, seed: int | None) -> None:
    import asyncio

    with asyncio.Runner(loop_factory=new_loop) as runner:
        pipe.send(("ready", None))
        _, (t0, deadline) = pipe.recv()

        def progress(done: int, _planned: int | None, _elapsed: float) -> None:
            pipe.send(("progress", done))

        tally = runner.run(run_share(base_url, profile, share, t0, on_progress=progress,
                                     hard_limit_s=deadline - time.monotonic(), seed=seed))
    pipe.send(("done", tally))
    pipe.close()


def run_spread(base_url: str, profile: LoadProfile, workers: int, *, on_progress: ProgressCallback | None = None,
               hard_limit_s: float | None = None, seed: int | None = None) -> LoadReport:
    """Run ``profile`` over ``workers`` processes; one report with every measurement merged."""
    began = time.monotonic()
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    for index in range(workers):
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, base_url, profile, Share(index, workers), seed),
                                  name=f"sluice-load-{index}", daemon=True)
        process.start()
        theirs.close()
        pipes.append(mine)
        processes.append(process)
    try:
        for index, pipe in enumerate(pipes):
            if not pipe.poll(START_TIMEOUT_S):
                raise RuntimeError(f"load worker {index} did not start within {START_TIMEOUT_S:g} s")
            pipe.recv()
        t0 = time.monotonic() + START_MARGIN_S
        limit = profile.duration_s + profile.timeout_s + 0.5
        if hard_limit_s is not None:
            limit = min(limit, hard_limit_s - (t0 - began))
        deadline = t0 + max(0.0, limit)
        offset = wall_offset()
        for pipe in pipes:
            pipe.send(("go", (t0, deadline)))
        finished = [0] * workers
        tallies: dict[int, Tally] = {}
        waiting = dict(enumerate(pipes))
        give_up = deadline + 10.0
        planned = profile.planned_requests()
        while waiting:
            now = time.monotonic()
            if now > give_up:
                raise RuntimeError(f"load worker(s) {sorted(waiting)} sent no result by the deadline")
            ready = wait(list(waiting.values()), timeout=min(0.25, give_up - now))
            for index, pipe in list(waiting.items()):
                if pipe not in ready:
                    continue
                try:
                    kind, value = pipe.recv()
                except EOFError as err:
                    raise RuntimeError(f"load worker {index} died (exit code {processes[index].exitcode})") from err
                if kind == "progress":
                    finished[index] = int(value)
                elif kind == "done":
                    tallies[index] = value
                    finished[index] = tallies[index].finished
                    del waiting[index]
            if on_progress is not None:
                on_progress(sum(finished), planned, time.monotonic() - t0)
        merged = Tally(first=t0, last_done=t0)
        for index in range(workers):
            merged.merge(tallies[index])
        return report(profile, merged, offset, workers)
    finally:
        for pipe in pipes:
            pipe.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
