-- Imbalance study (pipelines/study-data.mk): every final metric of each run of pipeline
-- study-imbalance but the base model, as (arm, seed, metric, value), arms in the order they
-- were first imported; plus each run's Brier score, the mean over test examples of
-- sum_c (p_c - [c = gold])^2 from the per-example probabilities.
WITH arm AS (SELECT id, name, seed FROM runs
             WHERE pipeline = 'study-imbalance' AND name <> 'base' AND status = 'ok'),
     ord AS (SELECT name, MIN(id) AS first FROM arm GROUP BY name),
     brier AS (SELECT e.run_id AS rid,
                      SUM((j.value - (j.key = e.gold)) * (j.value - (j.key = e.gold))) AS v
               FROM examples e, json_each(e.probs) j
               WHERE e.run_id IN (SELECT id FROM arm)
               GROUP BY e.run_id, e.example_id)
SELECT a.name, a.seed, s.metric, s.value, o.first
FROM arm a JOIN ord o USING (name) JOIN results s ON s.run_id = a.id
UNION ALL
SELECT a.name, a.seed, 'brier', AVG(b.v), o.first
FROM arm a JOIN ord o USING (name) JOIN brier b ON b.rid = a.id
GROUP BY a.id
ORDER BY 5, 2, 3;
