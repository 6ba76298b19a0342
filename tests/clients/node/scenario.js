// node-postgres scenario: unnamed statements, parameters as text with type OID 0 (Buffers
// in binary), results in text; a named statement reused; the refusal as pg's DatabaseError.
// Connection facts come from the environment (see tests/clients/python/common.py).
'use strict';

const fs = require('fs');
const assert = require('assert');
const pg = require('pg');

const TAG = 'node-pg';
const ENCRYPTED = (process.env.PGCLOAK_EXPECT || 'encrypted') !== 'plain';
const COLUMNS = ['ssn', 'email', 'age', 'visits', 'score', 'balance', 'active', 'born', 'wake',
  'seen', 'seen_tz', 'ext_id', 'profile', 'photo', 'small', 'ratio', 'doc'];

function env(name) {
  const v = process.env[name];
  if (v === undefined) throw new Error(`missing environment variable ${name}`);
  return v;
}

function connect(port, user, password) {
  return new pg.Client({
    host: env('PGCLOAK_HOST'), port: Number(port), user, password, database: env('PGCLOAK_DB'),
    ssl: { ca: fs.readFileSync(env('PGCLOAK_SSLROOTCERT')), servername: 'localhost' },
    connectionTimeoutMillis: 20000,
  });
}

// What we send (params) and what node-pg gives back (want) for each person.
function people() {
  const full = {
    ssn: `${TAG}-100`, email: `${TAG}.one@example.com`, age: 41, visits: '9000000001',
    score: 3.25, balance: '12345.6789', active: true, born: '1980-02-29', wake: '07:30:15.5',
    seen: '2024-03-01 12:34:56.789', seen_tz: new Date(Date.UTC(2024, 2, 1, 12, 34, 56, 789)),
    ext_id: '0f8fad5b-d9cb-469f-a165-70867728950e', profile: { a: 1, tags: ['x', 'y'] },
    photo: Buffer.from([0, 1, 0xfe, 0xff, 0x70]), small: 7, ratio: 0.5, doc: { k: 'v', n: [1, 2] },
  };
  const nulls = Object.fromEntries(COLUMNS.map((c) => [c, null]));
  const two = { ...nulls, ssn: `${TAG}-200`, email: `${TAG}.two@example.com` };
  const three = {
    ssn: `${TAG}-300`, email: `${TAG}.trois+é@example.com`, age: -5, visits: '-1', score: -0.125,
    balance: '-0.01', active: false, born: '2001-12-31', wake: '23:59:59',
    seen: '1999-12-31 23:59:59', seen_tz: new Date(Date.UTC(1999, 11, 31, 23, 59, 59)),
    ext_id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', profile: [], photo: Buffer.alloc(0),
    small: -32768, ratio: -1.5, doc: [],
  };
  return [full, two, three];
}

function toParam(column, v) {
  if (v === null) return null;
  if (column === 'profile' || column === 'doc') return JSON.stringify(v);
  return v;
}

// node-pg's parsed value in the comparable form of `people()`.
function normalize(column, v) {
  if (v === null || v === undefined) return null;
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  if (column === 'born') return `${v.getFullYear()}-${pad(v.getMonth() + 1)}-${pad(v.getDate())}`;
  if (column === 'seen') {
    const ms = v.getMilliseconds() ? `.${pad(v.getMilliseconds(), 3)}` : '';
    return `${v.getFullYear()}-${pad(v.getMonth() + 1)}-${pad(v.getDate())} ` +
      `${pad(v.getHours())}:${pad(v.getMinutes())}:${pad(v.getSeconds())}${ms}`;
  }
  return v;
}

const failures = [];
let checks = 0;
function check(ok, what) { checks += 1; if (!ok) failures.push(what); return ok; }
function equal(what, got, want) {
  try { assert.deepStrictEqual(got, want); checks += 1; return true; } catch (e) {
    return check(false, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}
function checkRow(label, got, want) {
  for (const c of COLUMNS) equal(`${label}.${c}`, normalize(c, got[c]), want[c]);
}

const INSERT = `INSERT INTO compat_people (client, note, ${COLUMNS.join(', ')}) VALUES ` +
  `(${COLUMNS.concat(['x', 'y']).map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`;
const SELECT = `SELECT id, ${COLUMNS.join(', ')} FROM compat_people WHERE ssn = $1`;

async function scenario() {
  const ps = people();
  const c = connect(env('PGCLOAK_PORT'), env('PGCLOAK_USER'), env('PGCLOAK_PASSWORD'));
  await c.connect();
  try {
    const ids = [];
    for (const [i, p] of ps.entries()) {
      const r = await c.query(INSERT, [TAG, `note ${i} ü`, ...COLUMNS.map((k) => toParam(k, p[k]))]);
      ids.push(r.rows[0].id);
    }
    equal('inserted ids', new Set(ids).size, 3);
    for (const a of [10, 25]) {
      await c.query('INSERT INTO compat_orders (client, person_ssn, amount) VALUES ($1, $2, $3)',
        [TAG, ps[0].ssn, a]);
    }
    // A named statement, executed often enough to be reused many times.
    for (let round = 0; round < 3; round += 1) {
      for (const p of ps) {
        const r = await c.query({ name: 'find-person', text: SELECT, values: [p.ssn] });
        if (equal(`rows for ssn ${p.ssn} (round ${round})`, r.rows.length, 1)) {
          checkRow(`${p.ssn}`, r.rows[0], p);
        }
      }
    }
    const newEmail = `${TAG}.one.new@example.com`;
    let r = await c.query('UPDATE compat_people SET email = $1, age = $2, profile = $3 WHERE ssn = $4',
      [newEmail, 42, JSON.stringify({ a: 2 }), ps[0].ssn]);
    equal('update rowCount', r.rowCount, 1);
    r = await c.query(`SELECT ${COLUMNS.join(', ')} FROM compat_people WHERE email = $1`, [newEmail]);
    if (equal('rows for the new email', r.rows.length, 1)) {
      checkRow('updated', r.rows[0], { ...ps[0], email: newEmail, age: 42, profile: { a: 2 } });
    }
    r = await c.query('DELETE FROM compat_people WHERE ssn = $1', [ps[2].ssn]);
    equal('delete rowCount', r.rowCount, 1);
    r = await c.query('SELECT count(*)::int AS n FROM compat_people WHERE client = $1', [TAG]);
    equal('people left', r.rows[0].n, 2);
    // A JS array goes as a text-format array literal ({"…","…"}) with type OID 0.
    r = await c.query('SELECT count(*)::int AS n FROM compat_people WHERE ssn = ANY($1)',
      [[ps[0].ssn, ps[1].ssn, 'nobody']]);
    equal('= ANY($1) with an array', r.rows[0].n, 2);
    r = await c.query({
      text: 'SELECT p.ssn, p.email, o.amount FROM compat_people p ' +
        'JOIN compat_orders o ON o.person_ssn = p.ssn WHERE p.client = $1 ORDER BY o.amount',
      values: [TAG], rowMode: 'array',
    });
    equal('join', r.rows, [[ps[0].ssn, newEmail, 10], [ps[0].ssn, newEmail, 25]]);
    if (ENCRYPTED) {
      let err = null;
      try { await c.query("SELECT id FROM compat_people WHERE ssn LIKE '1%'"); } catch (e) { err = e; }
      check(err instanceof pg.DatabaseError, `LIKE: error ${err && err.constructor.name}, want DatabaseError`);
      equal('LIKE: SQLSTATE', err && err.code, '0A000');
    }
    r = await c.query('SELECT 1 AS one');
    equal('session usable after the refusal', r.rows[0].one, 1);
  } finally {
    await c.end();
  }
  if (ENCRYPTED) await atRest(ps);
}

async function atRest(ps) {
  const d = connect(env('DIRECT_PORT'), env('DIRECT_USER'), env('DIRECT_PASSWORD'));
  await d.connect();
  try {
    const r = await d.query({ text: `SELECT ${COLUMNS.join(', ')} FROM compat_people WHERE client = $1`, values: [TAG], rowMode: 'array' });
    equal('at rest: people rows', r.rows.length, 2);
    for (const row of r.rows) {
      row.forEach((v, i) => {
        if (v === null) return;
        check(Buffer.isBuffer(v) && v.length > 6 && v[0] === 1 && (v[1] === 1 || v[1] === 2),
          `at rest: ${COLUMNS[i]} is not an envelope`);
        for (const p of ps) {
          check(!v.includes(Buffer.from(p.ssn)) && !v.includes(Buffer.from(p.email)),
            `at rest: plaintext of ${p.ssn} visible in ${COLUMNS[i]}`);
        }
      });
    }
    const o = await d.query('SELECT o.id FROM compat_orders o JOIN compat_people p ON p.ssn = o.person_ssn WHERE o.client = $1', [TAG]);
    equal('at rest: orders join on the stored ciphertext', o.rows.length, 2);
  } finally {
    await d.end();
  }
}

scenario().then(() => {
  if (failures.length) {
    console.log(`${TAG}: ${failures.length} of ${checks} checks FAILED`);
    for (const f of failures) console.log(`  - ${f}`);
    process.exit(1);
  }
  console.log(`${TAG}: all ${checks} checks passed`);
  process.exit(0);
}, (e) => {
  console.log(`${TAG}: unexpected error: ${e && e.stack}`);
  for (const f of failures) console.log(`  - ${f}`);
  process.exit(1);
});
