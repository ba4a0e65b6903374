-- The summary object (confusion matrix, reliability bins) of one run (?1 = run id).
SELECT value FROM params WHERE run_id = CAST(?1 AS INTEGER) AND key = 'summary';
