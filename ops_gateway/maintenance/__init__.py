"""The work behind each scheduled job (backups and their verification, retention, rollups,
cache cleanup, database maintenance); the clock process in ``scheduler/`` decides when."""
