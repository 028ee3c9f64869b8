-- Reverting 0044 only relaxes the constraint; the backfilled values stay until 0041 is reverted.
ALTER TABLE invoices ALTER COLUMN currency DROP NOT NULL;
