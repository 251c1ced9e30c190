-- Frame scores expire 30 days after they were stored, not after their capture: a screening recorded a month ago and
-- processed today keeps its per-frame rows for 30 days (with the TTL on captured_at they were deleted at once).
-- Servers without TTL: `moviemotion purge --expired` deletes by the same rule (inserted_at).
-- requires: ttl
ALTER TABLE frame_scores MODIFY TTL inserted_at + INTERVAL 30 DAY;
-- end
