def main():
    total = 0
    i = 0
    while i < 200000:
        total = total + len(f"item-{i}")
        i = i + 1
    return total
print(main())
