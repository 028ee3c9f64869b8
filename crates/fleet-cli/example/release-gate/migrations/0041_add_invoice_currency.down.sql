ALTER TABLE invoice_lines DROP COLUMN currency;
ALTER TABLE invoices DROP COLUMN currency;
