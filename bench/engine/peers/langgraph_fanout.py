# The LangGraph peer of fanout.flow: 10,000 parallel branches (Send) each doubling its
# number, summed by the state's reducer. Prints microseconds per branch.
import operator
import time
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send


class State(TypedDict):
    n: int
    total: Annotated[int, operator.add]


def fan_out(state):
    return [Send("work", {"i": i}) for i in range(state["n"])]


def work(item):
    return {"total": item["i"] * 2}


n = 10000
graph = StateGraph(State)
graph.add_node("work", work)
graph.add_conditional_edges(START, fan_out, ["work"])
graph.add_edge("work", END)
app = graph.compile()
start = time.perf_counter()
result = app.invoke({"n": n, "total": 0})
elapsed = time.perf_counter() - start
assert result["total"] == 99990000, result["total"]
print("branches", elapsed / n * 1e6)
