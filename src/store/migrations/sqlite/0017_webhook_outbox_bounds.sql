-- The webhook outbox's bounds (issue 35): how many deliveries each endpoint has dropped past
-- its cap of pending ones; and what pruning ended deliveries a chunk at a time reads: the
-- deliveries by when they were delivered or given up (pending ones left out), and the
-- attempts by delivery.
ALTER TABLE webhook_endpoints ADD COLUMN dropped INTEGER NOT NULL DEFAULT 0;
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at)
    WHERE delivered_at IS NOT NULL;
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (failed_at)
    WHERE failed_at IS NOT NULL;
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
