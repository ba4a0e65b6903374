-- Sample predictions or generations of one run (?1 = run id): the first 12 in input order.
SELECT example_id, COALESCE(gold, ''), COALESCE(prediction, ''), correct
FROM examples WHERE run_id = CAST(?1 AS INTEGER) ORDER BY rowid LIMIT 12;
