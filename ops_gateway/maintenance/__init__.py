"""Floor 7, the work behind each scheduled job: backups and their verification, retention,
rollups, cache cleanup, database maintenance. The job table naming them with their intervals is
``scheduler/jobs.py``; the clock decides when they run. Their SQL is in ``queries`` and
``statistics_queries``."""
