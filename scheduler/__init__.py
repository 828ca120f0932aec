"""The clock process: APScheduler jobs run here, never in web workers."""
