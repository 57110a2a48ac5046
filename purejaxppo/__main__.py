"""``python -m purejaxppo``: the command line (see `purejaxppo.cli`)."""

from purejaxppo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
