# Bare asyncio peer of concurrent.flow: N coroutines (first argument, default 10000), each
# three steps with a 1 s sleep in the middle. Prints the seconds beyond the sleep;
# bench/engine/run reads the resident memory.
import asyncio
import sys
import time


async def job(i):
    a = i
    await asyncio.sleep(1)
    return a + 1


async def main(n):
    results = await asyncio.gather(*(job(i) for i in range(n)))
    assert len(results) == n


n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
start = time.perf_counter()
asyncio.run(main(n))
print("beyond_sleep", time.perf_counter() - start - 1.0)
