"""``python -m scheduler``: the Procfile's clock process."""

from scheduler.clock import main

main()
