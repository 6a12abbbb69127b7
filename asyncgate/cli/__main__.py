"""`python -m asyncgate.cli`."""

from asyncgate.cli import main

if __name__ == "__main__":
    main()
