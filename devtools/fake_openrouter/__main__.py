"""``python -m devtools.fake_openrouter [--host H] [--port P] [--workers N]``."""

from devtools.fake_openrouter.server import main

main()
