# The LangGraph peer of nodes.flow: a 1000-node sequential graph, each node adding 1 to
# the state's x, invoked RUNS times (first argument, default 3) after a warm-up run.
# Prints microseconds per node.
import sys
import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    x: int


def step(state):
    return {"x": state["x"] + 1}


n = 1000
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
graph = StateGraph(State)
names = [f"step{i}" for i in range(n)]
for name in names:
    graph.add_node(name, step)
graph.add_edge(START, names[0])
for a, b in zip(names, names[1:]):
    graph.add_edge(a, b)
graph.add_edge(names[-1], END)
app = graph.compile()
config = {"recursion_limit": n + 10}
assert app.invoke({"x": 0}, config)["x"] == n
start = time.perf_counter()
for _ in range(runs):
    app.invoke({"x": 0}, config)
print("nodes", (time.perf_counter() - start) / (runs * n) * 1e6)
