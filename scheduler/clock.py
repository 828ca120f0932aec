"""Build the BlockingScheduler from the app's config and run it."""

import logging
import signal

from apscheduler.schedulers.blocking import BlockingScheduler

from ops_gateway import create_app

logger = logging.getLogger("ops_gateway.app")


def main():
    """Run the clock until SIGTERM/SIGINT."""
    app = create_app()
    scheduler = BlockingScheduler(timezone="UTC")
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    logger.info("scheduler started", extra={"jobs": [job.id for job in scheduler.get_jobs()]})
    with app.app_context():
        try:
            scheduler.start()
        except KeyboardInterrupt:
            pass
