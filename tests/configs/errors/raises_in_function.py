def compute():
    return 1 / 0


workers = compute()
