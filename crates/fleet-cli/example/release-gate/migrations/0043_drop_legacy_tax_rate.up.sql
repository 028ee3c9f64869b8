-- 0043: tax now comes from tax-service at render time (see the 2.4.0 release notes).
-- Nothing has read the per-invoice rate since 2.3.0.
ALTER TABLE invoices DROP COLUMN legacy_tax_rate;
ALTER TABLE invoice_lines DROP COLUMN legacy_tax_rate;
