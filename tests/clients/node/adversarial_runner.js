// Runner of the adversarial probe suite (tests/it/adversarial.rs) for node-postgres.
//
// Reads a JSON list of probe instances from the file named by argv[2]
// ([{id, mode, steps: [{sql, params, name}]}]), runs each instance's steps through pgcloak in one
// session (extended protocol with text parameters; a step with a name is a named prepared
// statement, so a second step with the same name re-executes it), and prints a JSON list of
// {id, steps: [{ok: true, rows} | {ok: false, code, message, detail}]} with every value as
// PostgreSQL's text.
'use strict';
const fs = require('fs');
const { Client } = require('pg');

const raw = { getTypeParser: () => (v) => v };

async function runInstance(inst) {
  const client = new Client({
    host: 'localhost',
    port: Number(process.env.PGCLOAK_PORT),
    user: process.env.PGCLOAK_USER,
    password: process.env.PGCLOAK_PASSWORD,
    database: process.env.PGCLOAK_DB,
    ssl: { ca: fs.readFileSync(process.env.PGCLOAK_SSLROOTCERT), servername: 'localhost' },
    types: raw,
    connectionTimeoutMillis: 20000,
  });
  const out = [];
  try {
    await client.connect();
  } catch (e) {
    return inst.steps.map(() => ({ ok: false, code: 'connect', message: String(e) }));
  }
  for (const step of inst.steps) {
    const q = { text: step.sql, values: step.params, rowMode: 'array', types: raw };
    if (step.name) q.name = step.name;
    try {
      const res = await client.query(q);
      const results = Array.isArray(res) ? res : [res];
      const rows = [];
      for (const r of results) for (const row of r.rows || []) rows.push(row.map((c) => (c === null ? null : String(c))));
      out.push({ ok: true, rows });
    } catch (e) {
      out.push({ ok: false, code: e.code || 'client', message: e.message || String(e), detail: e.detail || '' });
    }
  }
  await client.end().catch(() => {});
  return out;
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const results = [];
  for (const inst of spec) results.push({ id: inst.id, steps: await runInstance(inst) });
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
