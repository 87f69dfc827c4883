-- Issue 4's reference: the bare three-statement transaction (conditional debit, ledger row,
-- verification row), a pgbench script for bare/schema.sql. Client i uses account i + 1.
\set id :client_id + 1
\set price 188
\set debit 0 - :price
BEGIN;
UPDATE accounts SET balance = balance - :price WHERE id = :id AND balance >= :price;
INSERT INTO ledger (id, account_id, amount) VALUES (gen_random_uuid(), :id, :debit);
INSERT INTO verifications (id, account_id, price, status) VALUES (gen_random_uuid(), :id, :price, 'ACTIVE');
END;
