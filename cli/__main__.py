"""``python -m cli``: the same as the ``cvgrade`` console script."""

from cli.main import main

main()
