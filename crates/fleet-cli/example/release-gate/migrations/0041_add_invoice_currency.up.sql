-- 0041: invoices get their own currency (ISO 4217). Nullable until 0044 has backfilled it.
ALTER TABLE invoices ADD COLUMN currency char(3);
ALTER TABLE invoice_lines ADD COLUMN currency char(3);
