"""`python -m tandem.web …` runs Django's management commands, like the repository's manage.py."""

from tandem.web.manage import main

main()
