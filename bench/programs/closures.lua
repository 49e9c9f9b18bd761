local function main() local fs = {} local i = 0 while i < 1000000 do local counter = i fs[#fs + 1] = function() counter = counter + 1 return counter end i = i + 1 end local total = 0 for _, f in ipairs(fs) do total = total + f() end return total end
print(main())
