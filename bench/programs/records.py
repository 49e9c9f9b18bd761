def make(d):
    if d == 0: return {"left": None, "right": None}
    return {"left": make(d - 1), "right": make(d - 1)}
def check(t):
    if t["left"] is None: return 1
    return 1 + check(t["left"]) + check(t["right"])
n = 16
max_depth = max(6, n)
stretch = max_depth + 1
print(f"stretch tree of depth {stretch}\t check: {check(make(stretch))}")
long_lived = make(max_depth)
for d in range(4, max_depth + 1, 2):
    iters = 2 ** (max_depth - d + 4)
    c = 0
    for _ in range(iters): c += check(make(d))
    print(f"{iters}\t trees of depth {d}\t check: {c}")
print(f"long lived tree of depth {max_depth}\t check: {check(long_lived)}")
