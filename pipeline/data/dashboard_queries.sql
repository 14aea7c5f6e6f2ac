-- Example dashboard queries over the triangulate tables (docs/tables.md).
-- Portable: each runs unchanged on SQLite (the run store, tables.sqlite) and PostgreSQL,
-- and on DuckDB over the Parquet files once each table is a view (docs/dashboards.md).
-- Each query starts at a "-- name:" line; the lines after it, up to the next one, are its SQL.

-- name: open_contradictions_by_field
-- Fields on which sources contradict each other, and in how many incidents.
SELECT field,
       COUNT(*) AS n_incidents,
       SUM(CASE WHEN merged_value IS NULL THEN 1 ELSE 0 END) AS n_without_consensus
FROM conflicts
WHERE verdict = 'contradiction'
GROUP BY field
ORDER BY n_incidents DESC, field;

-- name: single_source_incidents
-- Incidents where no field is backed by two independent sources (e.g. every outlet relays one statement).
SELECT incident_id,
       n_articles,
       max_independent_sources,
       first_published,
       outlets_json
FROM incidents
WHERE max_independent_sources <= 1
ORDER BY first_published DESC NULLS LAST, incident_id;

-- name: grounding_rate_by_outlet
-- Share of cited values whose quote was found in the article, per outlet.
SELECT COALESCE(a.outlet, '(unknown)') AS outlet,
       COUNT(*) AS n_values,
       SUM(CASE WHEN fv.grounding_status IN ('exact', 'normalized', 'fuzzy') THEN 1 ELSE 0 END) AS n_grounded,
       ROUND(CAST(AVG(CASE WHEN fv.grounding_status IN ('exact', 'normalized', 'fuzzy') THEN 1.0 ELSE 0.0 END)
                  AS NUMERIC), 3) AS grounding_rate
FROM field_values fv
JOIN articles a ON a.id = fv.article_id
GROUP BY COALESCE(a.outlet, '(unknown)')
ORDER BY grounding_rate, outlet;
