-- ledgerline-migrate: no-transaction
-- 0045: the payments dashboard filters intents by merchant and status, newest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS payment_intents_merchant_status_idx
    ON payment_intents (merchant_id, status, created_at DESC);
