"""The work behind each scheduled job (backups and their verification, retention, rollups,
cache cleanup, database maintenance) and the job table naming them with their intervals
(``jobs``); the clock process in ``scheduler/`` decides when they run. Their SQL is in
``queries``."""
