-- Loss curves: training and validation loss of the newest run with a metric history.
-- ?1 = metric key ("loss" or "valid_loss").
SELECT step, value FROM metrics
WHERE key = ?1
  AND run_id = (SELECT run_id FROM metrics WHERE key IN ('loss', 'valid_loss')
                ORDER BY rowid DESC LIMIT 1)
ORDER BY step, rowid;
