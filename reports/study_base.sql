-- A study's reference lines: the newest run named "base" of pipeline ?1 — the base model's
-- accuracy and macro-F1 and, from the same test set, the majority-class baseline's.
SELECT MAX(CASE WHEN metric = 'acc' THEN value END),
       MAX(CASE WHEN metric = 'macro_f1' THEN value END),
       MAX(CASE WHEN metric = 'majority_acc' THEN value END),
       MAX(CASE WHEN metric = 'majority_macro_f1' THEN value END)
FROM results
WHERE run_id = (SELECT MAX(id) FROM runs WHERE pipeline = ?1 AND name = 'base' AND status = 'ok')
HAVING COUNT(*) > 0;
