-- Data-efficiency study (pipelines/study-data.mk): each fine-tuned run of pipeline
-- study-efficiency, named size=N (N = training records), with its seed, test accuracy and
-- macro-F1; by size, then seed.
SELECT CAST(substr(r.name, 6) AS INTEGER) AS size, r.seed,
       MAX(CASE WHEN s.metric = 'acc' THEN s.value END),
       MAX(CASE WHEN s.metric = 'macro_f1' THEN s.value END)
FROM runs r JOIN results s ON s.run_id = r.id
WHERE r.pipeline = 'study-efficiency' AND r.name LIKE 'size=%' AND r.status = 'ok'
GROUP BY r.id
ORDER BY size, r.seed, r.id;
