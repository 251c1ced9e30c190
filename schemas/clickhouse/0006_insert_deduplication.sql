-- Insert deduplication (docs/reliability.md, "Exactly once into ClickHouse"): each table keeps the block ids of
-- its last 1000 inserts, so an INSERT repeated with the same insert_deduplication_token (the sink's hash of the
-- batch) is stored once, also when the first one lands after the retry; audience_seconds, the view's target,
-- keeps them too, so the view's block of a dropped duplicate is dropped as well (the sink sets
-- deduplicate_blocks_in_dependent_materialized_views). 18.16 has neither the token nor this setting: there the
-- sink's existence check (and its wait for an unfinished INSERT) is all.
-- Note: ALTER ... DELETE does not forget block ids: the same rows inserted again within the window are dropped.
-- requires: insert_dedup_token
ALTER TABLE frame_scores MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE viewer_seconds MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE audience_seconds MODIFY SETTING non_replicated_deduplication_window = 1000;
-- end
