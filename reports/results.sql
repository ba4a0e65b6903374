-- Final metrics of one run (?1 = run id), with standard errors.
SELECT metric, value, stderr FROM results WHERE run_id = CAST(?1 AS INTEGER)
ORDER BY metric;
