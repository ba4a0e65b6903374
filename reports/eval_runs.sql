-- Finished runs with final metrics, newest first: the latest two are compared.
SELECT r.id, COALESCE(r.name, ''), r.kind, r.started_at,
       COALESCE((SELECT value FROM params p WHERE p.run_id = r.id AND p.key = 'task'), '')
FROM runs r
WHERE r.status = 'ok' AND EXISTS (SELECT 1 FROM results s WHERE s.run_id = r.id)
ORDER BY r.id DESC LIMIT 2;
