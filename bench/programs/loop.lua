local function main() local sum = 0 local i = 1 while i <= 10000000 do sum = sum + (i * i) % 7 i = i + 1 end return sum end
print(main())
