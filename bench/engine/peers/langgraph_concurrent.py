# The LangGraph peer of concurrent.flow: N concurrent runs (first argument, default
# 10000) of a three-node graph with a 1 s sleep in the middle node. Prints the seconds
# beyond the sleep; bench/engine/run reads the resident memory.
import asyncio
import sys
import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    i: int
    a: int


def prepare(state):
    return {"a": state["i"]}


async def wait(state):
    await asyncio.sleep(1)
    return {}


def finish(state):
    return {"a": state["a"] + 1}


graph = StateGraph(State)
graph.add_node("prepare", prepare)
graph.add_node("wait", wait)
graph.add_node("finish", finish)
graph.add_edge(START, "prepare")
graph.add_edge("prepare", "wait")
graph.add_edge("wait", "finish")
graph.add_edge("finish", END)
app = graph.compile()


async def main(n):
    results = await asyncio.gather(*(app.ainvoke({"i": i, "a": 0}) for i in range(n)))
    assert len(results) == n and results[-1]["a"] == n


n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
start = time.perf_counter()
asyncio.run(main(n))
print("beyond_sleep", time.perf_counter() - start - 1.0)
