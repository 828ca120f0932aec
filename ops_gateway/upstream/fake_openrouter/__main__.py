"""``python -m ops_gateway.upstream.fake_openrouter [--host H] [--port P] [--workers N]``."""

from ops_gateway.upstream.fake_openrouter.server import main

main()
