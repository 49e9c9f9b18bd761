local function main() local m = {} local i = 0 while i < 1000000 do m[i] = i i = i + 1 end local total = 0 i = 0 while i < 1000000 do total = total + m[i] i = i + 1 end return total end
print(main())
