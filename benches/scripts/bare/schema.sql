-- Issue 4's reference, set up on a scratch database: one account row per pgbench client
-- (50), a ledger and a verifications table with nothing but their primary keys.
-- Used by verifications.sh and ceiling.sh.
CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE ledger (id uuid PRIMARY KEY, account_id integer NOT NULL, amount bigint NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE verifications (id uuid PRIMARY KEY, account_id integer NOT NULL, price bigint NOT NULL,
                            status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO accounts SELECT g, 1000000000000 FROM generate_series(1, 50) AS g;
