"""`python -m bench`: every benchmark, one after another."""

from bench import store

if __name__ == "__main__":
    store.main()
