-- Data-efficiency curve, when present: metric histories named "efficiency/<metric>" whose
-- step is the number of training examples.
SELECT key, step, value FROM metrics WHERE key LIKE 'efficiency/%' ORDER BY key, step, rowid;
