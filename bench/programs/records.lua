local function make(d) if d == 0 then return {left = nil, right = nil} end return {left = make(d - 1), right = make(d - 1)} end
local function check(t) if t.left == nil then return 1 end return 1 + check(t.left) + check(t.right) end
local n = 16
local max_depth = math.max(6, n)
local stretch = max_depth + 1
print("stretch tree of depth " .. stretch .. "\t check: " .. check(make(stretch)))
local long_lived = make(max_depth)
for d = 4, max_depth, 2 do
  local iters = 2 ^ (max_depth - d + 4) // 1
  local c = 0
  for _ = 1, iters do c = c + check(make(d)) end
  print(math.floor(iters) .. "\t trees of depth " .. d .. "\t check: " .. c)
end
print("long lived tree of depth " .. max_depth .. "\t check: " .. check(long_lived))
