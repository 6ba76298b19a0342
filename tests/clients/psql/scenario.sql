-- psql scenario (simple protocol: every value is a literal in the SQL text).
-- Run with: psql -X -A -t -q -v ON_ERROR_STOP=1 -f scenario.sql; expected output: scenario.out
-- (what PostgreSQL itself prints for the same statements over plain logical-type columns).
SET TimeZone = 'UTC';
INSERT INTO compat_people (client, note, ssn, email, age, visits, score, balance, active, born,
    wake, seen, seen_tz, ext_id, profile, photo, small, ratio, doc)
VALUES
  ('psql', 'note 0 ü', 'psql-100', 'psql.one@example.com', 41, 9000000001, 3.25, 12345.6789,
   true, '1980-02-29', '07:30:15.5', '2024-03-01 12:34:56.789', '2024-03-01 12:34:56.789+00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1, "tags": ["x", "y"]}', '\x0001feff70', 7,
   0.5, '{"k":"v","n":[1,2]}'),
  ('psql', 'note 1', 'psql-200', 'psql.two@example.com', NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('psql', 'note 2', 'psql-300', 'psql.trois+é@example.com', -5, -1, -0.125, -0.01, false,
   '2001-12-31', '23:59:59', '1999-12-31 23:59:59', '2000-01-01 05:29:59+05:30',
   'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a22', '[]', '\x', -32768, -1.5, '[]')
RETURNING ssn, email;
INSERT INTO compat_orders (client, person_ssn, amount)
VALUES ('psql', 'psql-100', 10), ('psql', 'psql-100', 25);
\echo -- find by ssn
SELECT ssn, email, age, visits, score, balance, active, born, wake, seen, seen_tz, ext_id,
       profile, photo, small, ratio, doc
FROM compat_people WHERE ssn = 'psql-100';
SELECT ssn, email, age IS NULL, profile IS NULL, doc IS NULL FROM compat_people WHERE ssn = 'psql-200';
SELECT * FROM compat_people WHERE ssn = 'psql-300';
\echo -- update
UPDATE compat_people SET email = 'psql.one.new@example.com', age = 42, profile = '{"a": 2}'
WHERE ssn = 'psql-100' RETURNING ssn, email, age, profile;
SELECT p.ssn, p.age FROM compat_people AS p WHERE p.email IN ('psql.one.new@example.com', 'x');
\echo -- delete
DELETE FROM compat_people WHERE ssn = 'psql-300' RETURNING ssn;
SELECT count(*) FROM compat_people WHERE client = 'psql';
\echo -- join
SELECT p.ssn, p.email, o.amount FROM compat_people p
JOIN compat_orders o ON o.person_ssn = p.ssn WHERE p.client = 'psql' ORDER BY o.amount;
\echo -- refused
\set ON_ERROR_STOP 0
SELECT id FROM compat_people WHERE ssn LIKE '1%';
\echo refused :SQLSTATE
BEGIN;
SELECT ssn FROM compat_people WHERE ssn = 'psql-100';
SELECT id FROM compat_people WHERE ssn LIKE '1%';
\echo refused in a transaction :SQLSTATE
SELECT 1;
\echo next statement :SQLSTATE
ROLLBACK;
\set ON_ERROR_STOP 1
SELECT 'still usable';
