-- Every run, newest first (report: "Runs").
SELECT id, kind, COALESCE(name, ''), COALESCE(pipeline, ''), status, started_at,
       COALESCE(ended_at, ''), COALESCE(model, '')
FROM runs ORDER BY id DESC LIMIT 50;
