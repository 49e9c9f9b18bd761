local function main() local total = 0 local i = 0 while i < 200000 do total = total + #("item-" .. i) i = i + 1 end return total end
print(main())
