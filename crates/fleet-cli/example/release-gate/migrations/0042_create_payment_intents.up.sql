-- 0042: PayBridge v2 payment intents, one row per intent.
-- v1 charges stay in `payments` until the cutover is finished.
CREATE TABLE payment_intents (
    id            uuid PRIMARY KEY,
    invoice_id    uuid NOT NULL REFERENCES invoices (id),
    merchant_id   uuid NOT NULL,
    paybridge_id  text NOT NULL UNIQUE,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    currency      char(3) NOT NULL,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
