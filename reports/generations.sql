-- Generations of the newest finished `evaluate generate` run (task param "generate"): run id
-- and name, then per example (the first 12 in input order) id, prompt, generated text, target,
-- exact match, tokens generated and the stop sequence that ended it, from the results line kept
-- in examples.extra. The run's exact_match and its stderr come from results.
SELECT r.id, COALESCE(r.name, ''),
       (SELECT value FROM results s WHERE s.run_id = r.id AND s.metric = 'exact_match'),
       (SELECT stderr FROM results s WHERE s.run_id = r.id AND s.metric = 'exact_match'),
       e.example_id, COALESCE(json_extract(e.extra, '$.prompt'), ''), COALESCE(e.prediction, ''),
       COALESCE(e.gold, ''), e.correct, json_extract(e.extra, '$.tokens'),
       COALESCE(json_extract(e.extra, '$.stop'), '')
FROM runs r JOIN examples e ON e.run_id = r.id
WHERE r.id = (SELECT r2.id FROM runs r2 JOIN params p ON p.run_id = r2.id
              WHERE r2.status = 'ok' AND p.key = 'task' AND p.value = 'generate'
              ORDER BY r2.id DESC LIMIT 1)
ORDER BY e.rowid LIMIT 12;
