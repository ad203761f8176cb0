-- The facts of an earlier identical render, for reuse without drawing again.
SELECT render_id, storage_uri, manifest FROM renders WHERE render_id = ANY(:render_ids)
