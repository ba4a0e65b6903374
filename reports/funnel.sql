-- Data funnel: stage statistics of the newest run that has any, in the order loaded.
SELECT stage, records_in, records_out, COALESCE(bytes_in, 0), COALESCE(bytes_out, 0)
FROM stage_stats
WHERE run_id = (SELECT run_id FROM stage_stats ORDER BY rowid DESC LIMIT 1)
ORDER BY rowid;
