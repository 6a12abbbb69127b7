-- Finished webhook events (delivered or given up) are deleted once older than the configured
-- history (dispatcher.webhook_history_seconds), their attempts with them (ON DELETE CASCADE):
-- the sweeper finds them oldest first through this index, without reading pending ones.
CREATE INDEX webhook_outbox_finished ON webhook_outbox (created_at) WHERE state <> 'pending';
