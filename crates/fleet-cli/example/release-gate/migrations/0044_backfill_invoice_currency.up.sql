-- ledgerline-migrate: no-transaction
-- 0044: backfill invoices.currency from the owning account's default currency.
-- invoices has ~38M rows in production; this runs in batches of 10,000 to keep replica lag low.
-- Expect 40-60 minutes on the primary. Safe to re-run: it only touches rows where currency IS NULL.
DO $$
DECLARE
    batch_rows integer;
BEGIN
    LOOP
        UPDATE invoices AS i
           SET currency = a.default_currency
          FROM accounts AS a
         WHERE a.id = i.account_id
           AND i.id IN (SELECT id FROM invoices WHERE currency IS NULL LIMIT 10000);
        GET DIAGNOSTICS batch_rows = ROW_COUNT;
        EXIT WHEN batch_rows = 0;
        COMMIT;
    END LOOP;
END $$;

ALTER TABLE invoices ALTER COLUMN currency SET NOT NULL;
