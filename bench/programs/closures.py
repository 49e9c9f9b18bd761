def main():
    fs = []
    i = 0
    while i < 1000000:
        def make(counter):
            def f():
                nonlocal counter
                counter = counter + 1
                return counter
            return f
        fs.append(make(i))
        i = i + 1
    total = 0
    for f in fs:
        total = total + f()
    return total
print(main())
