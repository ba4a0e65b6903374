-- Early-stage hyperparameter search (kiln-hpo import, runs of kind "hpo"): one row per
-- candidate with its hyperparameters, compute and early/final validation scores.
SELECT
  (SELECT value FROM params WHERE run_id = r.id AND key = 'method') AS method,
  CAST((SELECT value FROM params WHERE run_id = r.id AND key = 'index') AS INTEGER) AS idx,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'lr') AS lr,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'batch') AS batch,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'epochs') AS epochs,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'steps') AS steps,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'early_steps') AS early_steps,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'examples') AS examples,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'early_examples') AS early_examples,
  (SELECT value FROM params WHERE run_id = r.id AND key = 'tokens_per_example') AS tpe,
  (SELECT value FROM metrics WHERE run_id = r.id AND key = 'hpo_early') AS early,
  (SELECT value FROM metrics WHERE run_id = r.id AND key = 'hpo_final') AS final
FROM runs r WHERE r.kind = 'hpo'
ORDER BY method, idx, r.id;
