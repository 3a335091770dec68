#!/usr/bin/env python3
"""pgqueuer (PyPI 1.6.0, asyncpg) on the cluster bench's PostgreSQL, its figures beside ForkPoolPostgres's.

Standard library, pgqueuer and asyncpg only. Each subcommand prints ONE JSON object as its last stdout
line ({"error": ...} and exit status 1 on failure), within --timeout (120 s); its consumer processes
are always stopped, and die with it.
install-schema --url URL: Queries.install() (`pgq install`) unless schema_is_installed(), then
  optimize_autovacuum() (`pgq autovac`, on pgqueuer's tuning checklist; idempotent).
drain --url URL [--jobs 10000] [--processes 2] [--batch-size 250] [--concurrency 1] [--max-tasks 0] [--await-ms 0]
  (--await-ms M: the entrypoint awaits an M ms timer, then a little CPU work, as the async-jobs section's
  Swift job does; 0: a no-op)
  Untimed setup, as pgqueuer's tools/benchmark.py: TRUNCATE queue, log and statistics (clear_queue,
  clear_queue_log, clear_statistics_log). P consumer processes (`consume`), each running C QueueManagers
  (an asyncpg connection each; run(batch_size=B, max_concurrent_tasks=--max-tasks or unlimited)) with
  an async no-op entrypoint "noop", ready once each manager answered
  pgqueuer's LISTEN/NOTIFY probe (listener_healthy). Then, on a separate poll connection: read
  xact_commit; start the clock; ONE Queries.enqueue call (one INSERT) of all jobs; `SELECT count(*) FROM
  pgqueuer`, sleep 5 ms, repeat until 0 (a finished job is deleted in the statement that logs it).
    seconds: enqueue start -> first poll that saw 0; jobsPerSecond = jobs / seconds.
    loggedSuccessful: pgqueuer_log rows with status 'successful' for the enqueued ids (must be jobs).
    xactCommits: pg_stat_database.xact_commit after - before; "after" is read on a fresh connection
      once the consumers stopped (SIGTERM: QueueManager shutdown), their backends exited (flushing
      their statistics) and the producer and poll connections closed. So: all of pgqueuer's
      transactions (enqueue, dequeues, log writes, idle re-checks, shutdown), the poll connection's,
      and anything else on the database (autovacuum).
    pollQueries: the poll connection's statements within xactCommits (the "before" read, the polls,
      the wait for the backends to exit): subtract them to get pgqueuer's own.
lone --url URL [--samples 30] [--processes 1] [--batch-size 1] [--debounce 0]
  Same setup; consumers idle and ready; one job at a time: t0, enqueue one "noop" job, await
  CompletionWatcher.wait_for(id) (pgqueuer's completion tracking: LISTEN for the table-change NOTIFY,
  then a status query on pgqueuer_log), t1. 3 unmeasured warm-up jobs; 50 ms idle before each job.
  p50, p90 (inclusive deciles) and max of t1 - t0, in seconds.
Tuning (2 cores, PostgreSQL 15 with fsync/synchronous_commit off, uvloop; a run's rate swings up to 2x
here, so medians of 5 drains of 10,000 jobs on 2 processes, jobs/s): batch size 10: 6,200; 50: 8,800;
100: 11,200; 250: 11,800; 500: 12,600; 1000: 11,700 (from 100 up that is noise; a 7-run set put 250
first at 12,700). 2 or 3 managers per process, or max_concurrent_tasks 500: no better. Untruncated,
back-to-back drains slowed until autovacuum ran, some stalling at ~550 jobs/s. Defaults: batch 250,
1 manager per process (fewest transactions), no max_concurrent_tasks or concurrency_limit (no limit
CTEs in the dequeue), dequeue_timeout 30 s (work arrives by NOTIFY), durability "durable" (logged
tables, as ours). Latency: a finished job is logged (and deleted) once batch_size results are buffered
or ~0.1 s later, and CompletionWatcher queries `debounce` (50 ms by default) after a NOTIFY. p50 / p90:
batch 1 + debounce 0: ~4 / ~8 ms; batch 1 + 50 ms: 52 / 55; batch 10 + 0: 52 / 65; batch 10 + 50 ms
(pgqueuer's defaults): 54 / 60-160; 2 processes: 5-8 / 11-13. Defaults: batch 1, debounce 0, 1 process.
"""
import argparse, asyncio, contextlib, ctypes, importlib, importlib.metadata, importlib.util, json, os
import signal, statistics, sys, time
from datetime import timedelta

try:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.errors import FailingListenerError
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.core.completion import CompletionWatcher
    VERSION = importlib.metadata.version("pgqueuer")
except ImportError as error:
    print(json.dumps({"peer": "pgqueuer", "error": f"pgqueuer/asyncpg not importable by {sys.executable}: {error}"}))
    sys.exit(2)

XACT = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
ACTIVITY = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
CHILDREN = []  # the consumer processes (asyncio.subprocess.Process)
PROCESSED = [0]  # in a consumer: the jobs its no-op entrypoint ran


def little_work(seed):
    """The CPU part of an async-jobs job: the Swift AwaitJob's loop."""
    value = seed
    for _ in range(2000):
        value = (value * 1103515245 + 12345) & 0x7FFFFFFF
    return value


def kill_children():
    for child in (child for child in CHILDREN if child.returncode is None):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)


async def connect(url):
    conn = await asyncpg.connect(url)
    return conn, Queries(AsyncpgDriver(conn))


async def consume(a):
    """One consumer process: prints "ready" once its managers listen, "processed N" when stopped."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent
    managers = []
    for _ in range(a.concurrency):
        conn, queries = await connect(a.url)
        qm = QueueManager(queries)

        @qm.entrypoint("noop", concurrency_limit=0)
        async def noop(job):
            if a.await_ms > 0:  # the async-jobs section: await a timer, then a little work
                await asyncio.sleep(a.await_ms / 1000)
                little_work(PROCESSED[0])
            PROCESSED[0] += 1
        managers.append((conn, qm))
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: [qm.shutdown.set() for _, qm in managers])
    tasks = [asyncio.create_task(qm.run(batch_size=a.batch_size, dequeue_timeout=timedelta(seconds=a.dequeue_timeout),
                                        max_concurrent_tasks=a.max_tasks or None)) for _, qm in managers]
    for _, qm in managers:
        while True:
            if any(task.done() for task in tasks):
                return await asyncio.gather(*tasks)  # raises the manager's error, if any
            try:
                await qm.listener_healthy(timeout=timedelta(seconds=0.2))
                break
            except FailingListenerError:
                pass
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    for conn, _ in managers:
        await conn.close()
    print(f"processed {PROCESSED[0]}", flush=True)


async def start_consumers(a):
    for _ in range(a.processes):
        CHILDREN.append(await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "consume", "--url", a.url, "--batch-size", str(a.batch_size),
            "--concurrency", str(a.concurrency), "--dequeue-timeout", str(a.dequeue_timeout),
            "--max-tasks", str(a.max_tasks), "--await-ms", str(a.await_ms), stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL))
    for child in CHILDREN:
        if (await asyncio.wait_for(child.stdout.readline(), 60)).strip() != b"ready":
            raise RuntimeError(f"consumer {child.pid} did not get ready (exit status {await child.wait()})")


async def stop_consumers():
    """SIGTERM (QueueManager shutdown), SIGKILL after 10 s; returns each process's job count."""
    for child in CHILDREN:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    counts = []
    for child in CHILDREN:
        try:
            out, _ = await asyncio.wait_for(child.communicate(), 10)
        except asyncio.TimeoutError:
            child.kill()
            out, _ = await child.communicate()
        counts.append(int(out.split()[-1]) if out.startswith(b"processed") else None)
    return counts


async def fresh_tables(url):
    conn, queries = await connect(url)
    await queries.clear_queue()
    await queries.clear_queue_log()
    await queries.clear_statistics_log()
    await conn.close()


def settings(a, **extra):
    return {"driver": "asyncpg (AsyncpgDriver, a connection per QueueManager)", "batchSize": a.batch_size,
            "queueManagersPerProcess": a.concurrency, "maxConcurrentTasks": a.max_tasks or None,
            "entrypointConcurrencyLimit": 0, "dequeueTimeoutSeconds": a.dequeue_timeout, "durability": "durable",
            "autovacuum": "pgq autovac", "tablesTruncatedBeforeRun": True,
            "eventLoop": "uvloop" if has_uvloop() else "asyncio", **extra}


async def install_schema(a):
    conn, queries = await connect(a.url)
    try:
        already = await queries.schema_is_installed()
        if not already:
            await queries.install()
        await queries.optimize_autovacuum()
    finally:
        await conn.close()
    return {"peer": "pgqueuer", "version": VERSION, "installed": not already, "alreadyInstalled": already,
            "autovacuumTuned": True}


async def drain(a):
    await fresh_tables(a.url)
    poll = await asyncpg.connect(a.url)
    own = {row[0] for row in await poll.fetch(ACTIVITY)}
    await start_consumers(a)
    (producer, queries), n = await connect(a.url), a.jobs
    before, polls = await poll.fetchval(XACT), 1
    start = time.perf_counter()
    ids = await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    while True:
        left = await poll.fetchval("SELECT count(*) FROM pgqueuer")
        polls += 1
        if left == 0:
            break
        if any(child.returncode is not None for child in CHILDREN):
            raise RuntimeError(f"a consumer process exited with {left} jobs left")
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - start
    logged = await producer.fetchval(
        "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful' AND job_id = ANY($1::bigint[])", ids)
    await producer.close()
    per_process = await stop_consumers()
    while {row[0] for row in await poll.fetch(ACTIVITY)} - own:  # until the backends since `own` exited
        polls += 1
        await asyncio.sleep(0.01)
    polls += 1
    await poll.close()
    await asyncio.sleep(0.5)  # the poll backend's exit (and statistics flush) is asynchronous
    fresh = await asyncpg.connect(a.url)
    after = await fresh.fetchval(XACT)
    await fresh.close()
    if logged != n:
        raise RuntimeError(f"pgqueuer_log has {logged} successful rows for {n} jobs")
    return {"peer": "pgqueuer", "version": VERSION, "jobs": n, "processes": a.processes, "seconds": round(seconds, 4),
            "jobsPerSecond": round(n / seconds, 1), "xactCommits": after - before, "pollQueries": polls,
            "loggedSuccessful": logged, "jobsPerProcess": per_process,
            "settings": settings(a, pollIntervalSeconds=0.005)}


async def lone(a):
    await fresh_tables(a.url)
    await start_consumers(a)
    (producer, queries), (watch, watch_queries), latencies = await connect(a.url), await connect(a.url), []
    try:
        async with CompletionWatcher(watch_queries.driver, queries=watch_queries, refresh_interval=timedelta(seconds=1),
                                     debounce=timedelta(seconds=a.debounce)) as watcher:
            for i in range(a.samples + 3):
                await asyncio.sleep(0.05)
                start = time.perf_counter()
                [job_id] = await queries.enqueue("noop", None)
                status = await watcher.wait_for(job_id)
                if i >= 3:
                    latencies.append(time.perf_counter() - start)
                if status != "successful":
                    raise RuntimeError(f"job {job_id} ended {status}")
    finally:
        await producer.close()
        await watch.close()
    per_process = await stop_consumers()
    deciles = statistics.quantiles(latencies, n=10, method="inclusive")
    return {"peer": "pgqueuer", "version": VERSION, "samples": len(latencies), "processes": a.processes,
            "p50": round(deciles[4], 6), "p90": round(deciles[8], 6), "max": round(max(latencies), 6),
            "jobsPerProcess": per_process,
            "settings": settings(a, completion="CompletionWatcher", debounceSeconds=a.debounce,
                                 refreshIntervalSeconds=1, warmupJobs=3, idleBeforeEachJobSeconds=0.05)}


def has_uvloop():
    return importlib.util.find_spec("uvloop") is not None  # pgqueuer's own runner (`pgq run`) uses it


def run(coro):
    return importlib.import_module("uvloop").run(coro) if has_uvloop() else asyncio.run(coro)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install-schema", "drain", "lone", "consume"):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        lone_ = name == "lone"
        for option, kind, default in (("timeout", float, 120), ("processes", int, 1 if lone_ else 2),
                                      ("batch-size", int, 1 if lone_ else 250), ("concurrency", int, 1),
                                      ("max-tasks", int, 0), ("dequeue-timeout", float, 30), ("jobs", int, 10000),
                                      ("samples", int, 30), ("debounce", float, 0.0), ("await-ms", float, 0.0)):
            p.add_argument("--" + option, type=kind, default=default)
    a = parser.parse_args()
    if a.command == "consume":
        return run(consume(a))
    command = {"install-schema": install_schema, "drain": drain, "lone": lone}[a.command]

    def fail(message):
        kill_children()
        print(json.dumps({"peer": "pgqueuer", "version": VERSION, "error": message}), flush=True)
        os._exit(1)

    async def bounded():
        try:
            return await asyncio.wait_for(command(a), a.timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"timed out after {a.timeout:g} s") from None
        finally:
            kill_children()

    signal.signal(signal.SIGALRM, lambda *_: fail(f"hard timeout after {a.timeout + 30:g} s"))
    signal.alarm(int(a.timeout) + 30)  # in case the event loop itself is stuck
    try:
        result = run(bounded())
    except Exception as error:
        fail(f"{type(error).__name__}: {error}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
