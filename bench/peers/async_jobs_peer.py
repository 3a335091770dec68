"""The async-jobs bench's Python peer: ProcessPoolExecutor with `workers` processes, each running
its share of the jobs at once under asyncio (each job awaits a 10 ms timer, then does a little
CPU work, as the Swift job does). Prints one JSON object: {"seconds": [...], "jobs": N}."""
import argparse
import asyncio
import json
import time
from concurrent.futures import ProcessPoolExecutor


def little_work(seed: int) -> int:
    # The same loop as the Swift job's `littleWork`.
    value = seed
    for _ in range(2000):
        value = (value * 1103515245 + 12345) & 0x7FFFFFFF
    return value


async def job(seed: int) -> int:
    await asyncio.sleep(0.010)
    return little_work(seed)


def run_share(seeds):
    async def everything():
        return await asyncio.gather(*(job(seed) for seed in seeds))
    return asyncio.run(everything())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    seeds = list(range(arguments.jobs))
    shares = [seeds[index::arguments.workers] for index in range(arguments.workers)]
    seconds = []
    with ProcessPoolExecutor(max_workers=arguments.workers) as executor:
        list(executor.map(run_share, [[0]] * arguments.workers))  # workers started
        for _ in range(arguments.rounds):
            start = time.perf_counter()
            results = list(executor.map(run_share, shares))
            seconds.append(time.perf_counter() - start)
            assert sum(len(part) for part in results) == arguments.jobs
    print(json.dumps({"seconds": seconds, "jobs": arguments.jobs}))


if __name__ == "__main__":
    main()
