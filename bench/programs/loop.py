def main():
    s = 0
    i = 1
    while i <= 10000000:
        s = s + (i * i) % 7
        i = i + 1
    return s
print(main())
