"""`python -m cardsvc.app.cli`: the `cardsvc` command."""

from cardsvc.app.cli import main

main()
