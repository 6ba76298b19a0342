//! The adversarial probe suite's engine (the probes are in `adversarial_*.rs`).
//!
//! A probe is data: SQL run straight on PostgreSQL to set the scene, then steps sent through
//! pgcloak in one session by one driver (tokio-postgres simple / extended with text parameters /
//! extended with binary parameters, psql, psycopg, node-postgres), and an expectation:
//! encrypted at rest and correct through pgcloak, or refused with nothing stored, or either of
//! the two ("safe"). Every probe instance gets its own rules table `a<k>` (columns `s` text
//! deterministic, `r` text randomized, `i` int4 deterministic, `n` numeric randomized, `v`
//! varchar deterministic, `d` date randomized, `j` jsonb randomized, `b` bytea randomized, and
//! the plain `id int PRIMARY KEY` and `note text`), a plain twin `tw<k>` with the logical types
//! (the same statements run straight on it say what PostgreSQL would store), fresh random
//! sentinels `{S1}`..`{S4}` (`{H1}`..`{H4}`: their bytes as hex) and markers `{M1}`, `{M2}`
//! (markers may legitimately be stored in plain tables; sentinels never may). Templates also
//! know `{t}` (the rules table), `{T}` (its name in upper case), `{tw}` (the twin), `{x}` (a
//! prefix for the probe's other objects) and `{k}` (the instance number).
//!
//! Probes that fail against the current proxy live in `adversarial_open.rs`, which is not
//! registered (see its header); every registered probe passes.
//!
//! After every probe of a test function has run, the judge checks each one: expected rows,
//! values read back through pgcloak, what is stored (every non-NULL value of a rules column of
//! the probe's table must be an envelope that decrypts under the column's key), no ciphertext
//! in any result or error, and the leak oracle ([`crate::leak`]) finds none of its sentinels in
//! the server log, any table, or the data files and WAL.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgcloak::codec::{LogicalType, TextContext, text_to_canonical};
use pgcloak::config::Rules;
use pgcloak::control::keys;
use pgcloak::crypto::KeyRing;
use pgcloak::devdb::{APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER};
use postgres_types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{HANG, TestEnv, start_encrypted, within};
use crate::leak;

/// The rules columns of every probe table: (name, logical type, mode).
pub const COLS: [(&str, &str, &str); 8] = [
    ("s", "text", "deterministic"),
    ("r", "text", "randomized"),
    ("i", "int4", "deterministic"),
    ("n", "numeric", "randomized"),
    ("v", "varchar", "deterministic"),
    ("d", "date", "randomized"),
    ("j", "jsonb", "randomized"),
    ("b", "bytea", "randomized"),
];

/// Prefix of a direct setup statement run as the superuser.
const SU_MARK: &str = "--superuser\n";

/// How a probe's steps reach pgcloak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Driver {
    /// tokio-postgres `simple_query`, parameters spliced in as literals.
    Simple,
    /// tokio-postgres Parse/Bind/Execute, parameters in text format (types left to the server).
    ExtText,
    /// tokio-postgres Parse/Bind/Execute, parameters in binary format where the type allows.
    ExtBin,
    /// psql (libpq), one `-c` per step, literals spliced in.
    Psql,
    /// psycopg 3, server-side binding (extended protocol, text parameters).
    PyText,
    /// psycopg 3, binary parameters and results (`%b`, `binary=True`).
    PyBin,
    /// psycopg 3 with `prepare=True` (named server-side prepared statements).
    PyPrep,
    /// node-postgres, extended protocol with text parameters (named when the step has a name).
    Node,
}

impl Driver {
    pub fn label(self) -> &'static str {
        match self {
            Driver::Simple => "tokio-simple",
            Driver::ExtText => "tokio-ext-text",
            Driver::ExtBin => "tokio-ext-binary",
            Driver::Psql => "psql",
            Driver::PyText => "psycopg-text",
            Driver::PyBin => "psycopg-binary",
            Driver::PyPrep => "psycopg-prepared",
            Driver::Node => "node-pg",
        }
    }
    fn protocol(self) -> &'static str {
        match self {
            Driver::Simple | Driver::Psql => "simple",
            Driver::ExtText | Driver::PyText | Driver::Node => "extended-text",
            Driver::ExtBin | Driver::PyBin => "extended-binary",
            Driver::PyPrep => "extended-prepared",
        }
    }
}

/// The three tokio-postgres ways.
pub const TOKIO: &[Driver] = &[Driver::Simple, Driver::ExtText, Driver::ExtBin];
/// Simple and extended (text).
pub const TWO: &[Driver] = &[Driver::Simple, Driver::ExtText];
/// Only the simple protocol (statements without parameters, multi-statement strings).
pub const SIMPLE: &[Driver] = &[Driver::Simple];

/// A parameter (spliced as a literal for the simple protocol).
#[derive(Clone, Debug)]
pub enum P {
    T(String),
    I(i32),
    Null,
}

/// `P::T` from a template (placeholders are filled per instance).
pub fn t(s: &str) -> P {
    P::T(s.to_owned())
}

/// What a step is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Must succeed (a sound statement).
    Setup,
    /// Judged by the probe's expectation.
    Attack,
    /// Result ignored (cleanup, a statement either outcome is fine for).
    Any,
}

/// One statement sent through pgcloak.
#[derive(Clone, Debug)]
pub struct Step {
    pub sql: String,
    pub params: Vec<P>,
    pub role: Role,
    /// Rows it must return (text cells, `None` = NULL), when it succeeds.
    pub rows: Option<Vec<Vec<Option<String>>>>,
    /// Extended protocol: a statement name; the same name later re-executes the prepared
    /// statement (Bind/Execute only).
    pub name: Option<String>,
    /// Extended protocol (tokio-postgres): parameter types declared in Parse.
    pub types: Option<Vec<Type>>,
}

/// What a probe's value checks compare with.
#[derive(Clone, Debug)]
pub enum Want {
    /// This value (a template; `None` = NULL).
    Is(Option<String>),
    /// What the twin table holds after the same steps ran straight on PostgreSQL.
    Twin,
}

/// A check after the probe ran.
#[derive(Clone, Debug)]
pub enum Check {
    /// `public.a<k>.col` of row `id`: read through pgcloak it is `want`, and it is stored as an
    /// envelope of it (or NULL).
    Enc {
        col: &'static str,
        id: i32,
        want: Want,
    },
    /// `table.col` (a template, plain table) of row `id` read straight from PostgreSQL.
    Plain {
        table: String,
        col: String,
        id: i32,
        want: Option<String>,
    },
    /// `table` (template) has this many rows, counted straight on PostgreSQL.
    Count { table: String, n: i64 },
}

/// The expectation of a probe.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The attack steps succeed and the checks hold.
    Encrypted(Vec<Check>),
    /// An attack step fails; nothing leaks.
    Refused,
    /// An attack step fails, nothing leaks, and the checks hold afterwards.
    RefusedThen(Vec<Check>),
    /// Either refused, or succeeded with the checks holding.
    Safe(Vec<Check>),
    /// An attack step fails with this SQLSTATE; its message never shows ciphertext.
    ServerError(&'static str),
}

/// A probe template.
#[derive(Clone, Debug)]
pub struct Probe {
    pub class: &'static str,
    pub name: String,
    pub direct: Vec<String>,
    pub steps: Vec<Step>,
    pub expect: Expect,
    pub drivers: Vec<Driver>,
    /// Wait for pgcloak's catalog poll after the direct setup (it made objects pgcloak must
    /// see: functions, tables).
    pub needs_poll: bool,
    /// Startup `options` (`-c name=value …`) of the session (tokio-postgres and psql).
    pub options: Option<String>,
}

/// A new probe of `class` (steps, expectation and drivers follow).
pub fn probe(class: &'static str, name: &str) -> Probe {
    Probe {
        class,
        name: name.to_owned(),
        direct: Vec::new(),
        steps: Vec::new(),
        expect: Expect::Refused,
        drivers: TOKIO.to_vec(),
        needs_poll: false,
        options: None,
    }
}

impl Probe {
    /// SQL run straight on PostgreSQL as the app role before the steps (no sentinels here).
    pub fn direct(mut self, sql: &str) -> Self {
        self.direct.push(sql.to_owned());
        self.needs_poll = true;
        self
    }
    /// SQL run straight on PostgreSQL as the superuser before the steps (roles, grants).
    pub fn direct_su(mut self, sql: &str) -> Self {
        self.direct.push(format!("{SU_MARK}{sql}"));
        self.needs_poll = true;
        self
    }
    fn push(mut self, role: Role, sql: &str, params: Vec<P>) -> Self {
        self.steps.push(Step {
            sql: sql.to_owned(),
            params,
            role,
            rows: None,
            name: None,
            types: None,
        });
        self
    }
    pub fn setup(self, sql: &str) -> Self {
        self.push(Role::Setup, sql, vec![])
    }
    pub fn setup_p(self, sql: &str, params: Vec<P>) -> Self {
        self.push(Role::Setup, sql, params)
    }
    pub fn attack(self, sql: &str) -> Self {
        self.push(Role::Attack, sql, vec![])
    }
    pub fn attack_p(self, sql: &str, params: Vec<P>) -> Self {
        self.push(Role::Attack, sql, params)
    }
    pub fn any(self, sql: &str) -> Self {
        self.push(Role::Any, sql, vec![])
    }
    /// The last step must return these rows (templates).
    pub fn rows(mut self, rows: &[&[Option<&str>]]) -> Self {
        let last = self.steps.last_mut().expect("rows() after a step");
        last.rows = Some(
            rows.iter()
                .map(|r| r.iter().map(|c| c.map(str::to_owned)).collect())
                .collect(),
        );
        self
    }
    /// The last step declares its parameter types in Parse (tokio-postgres drivers).
    pub fn typed(mut self, types: &[Type]) -> Self {
        self.steps.last_mut().expect("typed() after a step").types = Some(types.to_vec());
        self
    }
    /// The last step is a named extended statement.
    pub fn named(mut self, name: &str) -> Self {
        self.steps.last_mut().expect("named() after a step").name = Some(name.to_owned());
        self
    }
    pub fn expect(mut self, e: Expect) -> Self {
        self.expect = e;
        self
    }
    /// Startup options of the session, e.g. `-c standard_conforming_strings=off`.
    pub fn options(mut self, o: &str) -> Self {
        self.options = Some(o.to_owned());
        self
    }
    pub fn on(mut self, drivers: &[Driver]) -> Self {
        self.drivers = drivers.to_vec();
        self
    }
}

/// `Check::Enc` with a literal (template) value.
pub fn enc(col: &'static str, id: i32, want: Option<&str>) -> Check {
    Check::Enc {
        col,
        id,
        want: Want::Is(want.map(str::to_owned)),
    }
}

/// `Check::Enc` against the twin table.
pub fn twin(col: &'static str, id: i32) -> Check {
    Check::Enc {
        col,
        id,
        want: Want::Twin,
    }
}

/// `Check::Count`.
pub fn count(table: &str, n: i64) -> Check {
    Check::Count {
        table: table.to_owned(),
        n,
    }
}

/// `Check::Plain`.
pub fn plain(table: &str, col: &str, id: i32, want: Option<&str>) -> Check {
    Check::Plain {
        table: table.to_owned(),
        col: col.to_owned(),
        id,
        want: want.map(str::to_owned),
    }
}

/// A server error of a step.
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub detail: String,
}

/// What one step did.
#[derive(Clone, Debug)]
pub enum Out {
    Ok(Vec<Vec<Option<String>>>),
    Err(Failure),
    NotRun,
}

/// One probe run by one driver.
#[derive(Debug)]
struct Instance {
    probe: usize,
    driver: Driver,
    k: usize,
    sentinels: [String; 4],
    markers: [String; 2],
}

impl Instance {
    fn fill_with(&self, s: &str, table: &str) -> String {
        let mut out = s
            .replace("{tw}", &format!("tw{}", self.k))
            .replace("{t}", table)
            .replace("{T}", &table.to_uppercase())
            .replace("{x}", &format!("x{}", self.k))
            .replace("{k}", &self.k.to_string());
        for (i, v) in self.sentinels.iter().enumerate() {
            out = out.replace(&format!("{{S{}}}", i + 1), v);
            out = out.replace(&format!("{{H{}}}", i + 1), &hex::encode(v));
        }
        for (i, v) in self.markers.iter().enumerate() {
            out = out.replace(&format!("{{M{}}}", i + 1), v);
        }
        out
    }
    fn fill(&self, s: &str) -> String {
        self.fill_with(s, &format!("a{}", self.k))
    }
    fn table(&self) -> String {
        format!("a{}", self.k)
    }
    fn step(&self, st: &Step, table: &str) -> Step {
        Step {
            sql: self.fill_with(&st.sql, table),
            params: st
                .params
                .iter()
                .map(|p| match p {
                    P::T(s) => P::T(self.fill_with(s, table)),
                    other => other.clone(),
                })
                .collect(),
            role: st.role,
            rows: st.rows.as_ref().map(|rows| {
                rows.iter()
                    .map(|r| {
                        r.iter()
                            .map(|c| c.as_ref().map(|c| self.fill_with(c, table)))
                            .collect()
                    })
                    .collect()
            }),
            name: st.name.clone(),
            types: st.types.clone(),
        }
    }
}

/// One instance's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub class: &'static str,
    pub name: String,
    pub driver: Driver,
    /// `(oracle, what was observed)`; empty = passed.
    pub problems: Vec<(String, String)>,
    /// The steps as sent (filled), for the failure report.
    pub sent: Vec<String>,
}

/// The result of a suite run.
pub struct Report {
    pub verdicts: Vec<Verdict>,
    pub elapsed: Duration,
}

impl Report {
    /// Panics listing every failed instance; prints a per-class/driver summary; appends the
    /// failures to `$ADV_REPORT` when set.
    pub fn assert_all_passed(&self, what: &str) {
        let failed: Vec<&Verdict> = self
            .verdicts
            .iter()
            .filter(|v| !v.problems.is_empty())
            .collect();
        let mut summary: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
        for v in &self.verdicts {
            let e = summary.entry((v.class, v.driver.label())).or_default();
            e.0 += 1;
            if v.problems.is_empty() {
                e.1 += 1;
            }
        }
        let mut text = format!(
            "{what}: {} probes, {} passed, {} failed, {:.1}s\n",
            self.verdicts.len(),
            self.verdicts.len() - failed.len(),
            failed.len(),
            self.elapsed.as_secs_f64()
        );
        for ((class, driver), (n, ok)) in &summary {
            let _ = writeln!(text, "  {class:<16} {driver:<18} {ok}/{n}");
        }
        let mut fails = String::new();
        for v in &failed {
            let _ = writeln!(
                fails,
                "- [{}] {} ({} / {})",
                v.class,
                v.name,
                v.driver.label(),
                v.driver.protocol()
            );
            for s in &v.sent {
                let _ = writeln!(fails, "    sent: {s}");
            }
            for (oracle, seen) in &v.problems {
                let _ = writeln!(fails, "    {oracle}: {seen}");
            }
        }
        eprintln!("{text}{fails}");
        if let Ok(path) = std::env::var("ADV_REPORT") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = write!(f, "{text}{fails}");
            }
        }
        assert!(failed.is_empty(), "{what}: {} probes failed", failed.len());
    }
}

/// Rules text for `n` probe tables.
fn rules_text(n: usize) -> String {
    let mut s = format!("database = \"{APP_DATABASE}\"\n");
    for k in 0..n {
        let _ = writeln!(s, "[tables.a{k}]");
        for (c, ty, mode) in COLS {
            let _ = writeln!(
                s,
                "{c} = {{ type = \"{ty}\", mode = \"{mode}\", key = \"adv.{c}\" }}"
            );
        }
    }
    s
}

/// The probe tables and their twins.
fn tables_ddl(n: usize) -> String {
    let mut s = String::new();
    let enc: Vec<String> = COLS.iter().map(|(c, _, _)| format!("{c} bytea")).collect();
    let tw: Vec<String> = COLS.iter().map(|(c, ty, _)| format!("{c} {ty}")).collect();
    for k in 0..n {
        let _ = writeln!(
            s,
            "CREATE TABLE a{k} (id int PRIMARY KEY, {}, note text); \
             CREATE TABLE tw{k} (id int PRIMARY KEY, {}, note text);",
            enc.join(", "),
            tw.join(", ")
        );
    }
    s
}

/// The suite's environment: a logging PostgreSQL, the probe tables, pgcloak with their rules.
pub struct Adv {
    pub env: TestEnv,
    rules: Rules,
    ring: KeyRing,
}

/// Runs `probes` (each on each of its drivers) against one PostgreSQL + pgcloak and judges them.
pub async fn run_suite(probes: Vec<Probe>) -> Report {
    let t0 = Instant::now();
    let mut instances = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        for &d in &p.drivers {
            let k = instances.len();
            instances.push(Instance {
                probe: i,
                driver: d,
                k,
                sentinels: [
                    leak::sentinel(),
                    leak::sentinel(),
                    leak::sentinel(),
                    leak::sentinel(),
                ],
                markers: [marker(), marker()],
            });
        }
    }
    let n = instances.len();
    let db = leak::start_logged_db().await;
    {
        let app = db
            .client(APP_USER, APP_PASSWORD, APP_DATABASE)
            .await
            .expect("direct app login");
        app.batch_execute(&tables_ddl(n))
            .await
            .expect("create probe tables");
    }
    let (env, rules, master) = start_encrypted(db, &rules_text(n)).await;
    let control = env
        .db
        .client(CONTROL_USER, CONTROL_PASSWORD, APP_DATABASE)
        .await
        .expect("control login");
    let ring = keys::load_keyring(&control, &master)
        .await
        .expect("keyring");
    let adv = Adv { env, rules, ring };
    // Direct setup of every instance, then one wait for the catalog poll.
    let direct = adv.env.direct_app().await;
    let su = leak::quiet_superuser(&adv.env.db, APP_DATABASE).await;
    let mut setup_errors: HashMap<usize, String> = HashMap::new();
    let mut poll = false;
    for inst in &instances {
        let p = &probes[inst.probe];
        poll |= p.needs_poll;
        for sql in &p.direct {
            let (conn, sql) = match sql.strip_prefix(SU_MARK) {
                Some(rest) => (&su, rest),
                None => (&direct, sql.as_str()),
            };
            if let Err(e) = conn.batch_execute(&inst.fill(sql)).await {
                setup_errors.insert(inst.k, format!("direct setup failed: {e:?}"));
                break;
            }
        }
    }
    if poll {
        tokio::time::sleep(Duration::from_millis(2600)).await;
    }
    // Run.
    let mut outs: HashMap<usize, Vec<Out>> = HashMap::new();
    let mut by_script: BTreeMap<&'static str, Vec<&Instance>> = BTreeMap::new();
    for inst in &instances {
        if setup_errors.contains_key(&inst.k) {
            continue;
        }
        let steps: Vec<Step> = probes[inst.probe]
            .steps
            .iter()
            .map(|s| inst.step(s, &inst.table()))
            .collect();
        match inst.driver {
            Driver::Simple | Driver::ExtText | Driver::ExtBin => {
                let opts = probes[inst.probe].options.as_deref();
                let c = match opts {
                    None => Ok(adv.env.app().await),
                    Some(o) => {
                        let mut cfg = adv
                            .env
                            .proxy_pg_config(APP_USER, APP_PASSWORD, APP_DATABASE);
                        cfg.options(o);
                        adv.env.connect(&cfg).await
                    }
                };
                match c {
                    Ok(c) => {
                        outs.insert(inst.k, run_tokio(&c, inst.driver, &steps).await);
                    }
                    Err(e) => {
                        let f = failure(&e);
                        let mut o = vec![Out::NotRun; steps.len()];
                        if let Some(i) = steps.iter().position(|s| s.role == Role::Attack) {
                            o[i] = Out::Err(f);
                        }
                        outs.insert(inst.k, o);
                    }
                }
            }
            Driver::Psql => {
                let opts = probes[inst.probe].options.as_deref();
                outs.insert(inst.k, run_psql(&adv.env, &steps, opts).await);
            }
            Driver::PyText | Driver::PyBin | Driver::PyPrep => {
                by_script.entry("python").or_default().push(inst)
            }
            Driver::Node => by_script.entry("node").or_default().push(inst),
        }
    }
    for (lang, list) in by_script {
        let jobs: Vec<(usize, Driver, Vec<Step>)> = list
            .iter()
            .map(|inst| {
                let steps = probes[inst.probe]
                    .steps
                    .iter()
                    .map(|s| inst.step(s, &inst.table()))
                    .collect();
                (inst.k, inst.driver, steps)
            })
            .collect();
        for (k, o) in run_script(&adv.env, lang, &jobs).await {
            outs.insert(k, o);
        }
    }
    // Judge.
    let found = leak::scan_all(&adv.env.db).await;
    let mut verdicts = Vec::new();
    for inst in &instances {
        let p = &probes[inst.probe];
        let steps: Vec<Step> = p
            .steps
            .iter()
            .map(|s| inst.step(s, &inst.table()))
            .collect();
        let mut problems = Vec::new();
        if let Some(e) = setup_errors.get(&inst.k) {
            problems.push(("harness".to_owned(), e.clone()));
        } else {
            let o = outs.remove(&inst.k).unwrap_or_default();
            problems.extend(adv.judge(p, inst, &steps, &o).await);
        }
        for f in &found {
            if inst.sentinels.contains(&f.sentinel) {
                problems.push((format!("leak-{}", f.place.kind()), f.place.to_string()));
            }
        }
        problems.dedup();
        verdicts.push(Verdict {
            class: p.class,
            name: p.name.clone(),
            driver: inst.driver,
            problems,
            sent: steps
                .iter()
                .map(|s| {
                    let mut line = format!("{:?}: {}", s.role, s.sql);
                    if !s.params.is_empty() {
                        let _ = write!(line, "  params {:?}", s.params);
                    }
                    line
                })
                .collect(),
        });
    }
    Report {
        verdicts,
        elapsed: t0.elapsed(),
    }
}

/// A random marker (a value that may be stored in plain tables).
fn marker() -> String {
    leak::sentinel().replace(leak::PREFIX, "marker_")
}

/// Whether `s` shows an envelope: `\x01` + mode + at least 20 more bytes as hex, bare hex
/// of an envelope's header (`encode(col, 'hex')`), or its base64 (`AQEAAAAB`, `AQIAAAAB`).
pub fn looks_like_ciphertext(s: &str) -> bool {
    if s.contains("AQEAAAAB") || s.contains("AQIAAAAB") {
        return true;
    }
    for head in ["010100000001", "010200000001"] {
        if let Some(at) = s.find(head) {
            let run = s[at..].bytes().take_while(u8::is_ascii_hexdigit).count();
            if run >= 44 {
                return true;
            }
        }
    }
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(at) = s[i..].find("\\x01") {
        let start = i + at + 4;
        let run = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if run >= 42 && (b[start..start + 2] == *b"01" || b[start..start + 2] == *b"02") {
            return true;
        }
        i = i + at + 1;
    }
    false
}

impl Adv {
    async fn judge(
        &self,
        p: &Probe,
        inst: &Instance,
        steps: &[Step],
        o: &[Out],
    ) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut attack_err: Option<&Failure> = None;
        let mut attack_ran = false;
        for (i, (st, out)) in steps.iter().zip(o.iter()).enumerate() {
            match out {
                Out::Ok(rows) => {
                    if st.role == Role::Attack {
                        attack_ran = true;
                    }
                    for cell in rows.iter().flatten().flatten() {
                        if looks_like_ciphertext(cell) {
                            problems.push((
                                "ciphertext-returned".into(),
                                format!("step {i} returned {}", short(cell)),
                            ));
                        }
                    }
                    if let Some(want) = &st.rows
                        && want != rows
                    {
                        problems.push((
                            "wrong-value".into(),
                            format!("step {i} returned {rows:?}, expected {want:?}"),
                        ));
                    }
                }
                Out::Err(f) => {
                    if looks_like_ciphertext(&f.message) || looks_like_ciphertext(&f.detail) {
                        problems.push((
                            "ciphertext-in-error".into(),
                            format!("step {i}: {} / {}", short(&f.message), short(&f.detail)),
                        ));
                    }
                    match st.role {
                        Role::Setup => problems.push((
                            "refused-sound".into(),
                            format!("setup step {i} failed: {} {}", f.code, short(&f.message)),
                        )),
                        Role::Attack => {
                            attack_ran = true;
                            if attack_err.is_none() {
                                attack_err = Some(f);
                            }
                        }
                        Role::Any => {}
                    }
                }
                Out::NotRun => {}
            }
        }
        if o.len() < steps.len() {
            problems.push(("harness".into(), format!("only {} outcomes", o.len())));
        }
        if !attack_ran && problems.is_empty() {
            problems.push(("harness".into(), "the attack did not run".into()));
        }
        let checks: &[Check] = match (&p.expect, attack_err) {
            (Expect::Encrypted(c), None) => c,
            (Expect::Encrypted(_), Some(f)) => {
                problems.push((
                    "refused-sound".into(),
                    format!("{} {}", f.code, short(&f.message)),
                ));
                &[]
            }
            (Expect::Refused, None) => {
                problems.push(("accepted".into(), "the attack succeeded".into()));
                &[]
            }
            (Expect::Refused, Some(_)) => &[],
            (Expect::RefusedThen(_), None) => {
                problems.push(("accepted".into(), "the attack succeeded".into()));
                &[]
            }
            (Expect::RefusedThen(c), Some(_)) => c,
            (Expect::Safe(c), None) => c,
            (Expect::Safe(_), Some(_)) => &[],
            (Expect::ServerError(code), Some(f)) => {
                if f.code != *code {
                    problems.push((
                        "wrong-error".into(),
                        format!("{} {} (expected {code})", f.code, short(&f.message)),
                    ));
                }
                &[]
            }
            (Expect::ServerError(code), None) => {
                problems.push(("accepted".into(), format!("expected error {code}")));
                &[]
            }
        };
        for c in checks {
            if let Err(e) = self.check(p, inst, c).await {
                problems.push(e);
            }
        }
        if let Err(e) = self.rules_clean(inst).await {
            problems.push(e);
        }
        problems
    }

    /// Every non-NULL value stored in a rules column of the probe's table is an envelope that
    /// decrypts under the column's key.
    async fn rules_clean(&self, inst: &Instance) -> Result<(), (String, String)> {
        let direct = leak::quiet_superuser(&self.env.db, APP_DATABASE).await;
        let t = inst.table();
        let exists: bool = direct
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[&format!("public.{t}")],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(false);
        if !exists {
            return Ok(());
        }
        let cols: Vec<String> = direct
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
                &[&format!("public.{t}")],
            )
            .await
            .map_err(|e| ("harness".to_owned(), format!("{e}")))?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .filter_map(|(c, ty)| {
                let rule = COLS.iter().any(|(n, _, _)| *n == c);
                if !rule {
                    return None;
                }
                Some(format!("{c}:{ty}"))
            })
            .collect();
        for spec in &cols {
            let (c, ty) = spec.split_once(':').unwrap_or_default();
            if ty != "bytea" {
                return Err((
                    "not-encrypted".into(),
                    format!("rules column {t}.{c} now has type {ty}"),
                ));
            }
            let rows = direct
                .query(
                    format!("SELECT {c} FROM public.{t} WHERE {c} IS NOT NULL").as_str(),
                    &[],
                )
                .await
                .map_err(|e| ("harness".to_owned(), format!("{e}")))?;
            let rule = self
                .rules
                .column("public", &t, c)
                .expect("probe rules column");
            for r in rows {
                let v: Vec<u8> = r.get(0);
                if self.ring.decrypt(&rule.key, &v).is_err() {
                    return Err((
                        "not-encrypted".into(),
                        format!(
                            "{t}.{c} stores {} (not an envelope of its key)",
                            short(&String::from_utf8_lossy(&v))
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn check(&self, p: &Probe, inst: &Instance, c: &Check) -> Result<(), (String, String)> {
        let direct = leak::quiet_superuser(&self.env.db, APP_DATABASE).await;
        match c {
            Check::Count { table, n } => {
                let table = inst.fill(table);
                let got: i64 = direct
                    .query_one(format!("SELECT count(*) FROM {table}").as_str(), &[])
                    .await
                    .map_err(|e| ("harness".to_owned(), format!("count {table}: {e}")))?
                    .get(0);
                if got != *n {
                    return Err((
                        "wrong-value".into(),
                        format!("{table} has {got} rows, expected {n}"),
                    ));
                }
                Ok(())
            }
            Check::Plain {
                table,
                col,
                id,
                want,
            } => {
                let table = inst.fill(table);
                let sql = format!("SELECT ({col})::text FROM {table} WHERE id = {id}");
                let got = simple_cell(&direct, &sql)
                    .await
                    .map_err(|e| ("harness".to_owned(), format!("{sql}: {e}")))?;
                let want = want.as_ref().map(|w| inst.fill(w));
                if got != want {
                    return Err((
                        "wrong-value".into(),
                        format!("{table}.{col} row {id} is {got:?}, expected {want:?}"),
                    ));
                }
                Ok(())
            }
            Check::Enc { col, id, want } => {
                let want = match want {
                    Want::Is(w) => w.as_ref().map(|w| inst.fill(w)),
                    Want::Twin => match self.twin_value(p, inst, col, *id).await {
                        Ok(v) => v,
                        Err(msg) => return Err(("wrong-value".into(), msg)),
                    },
                };
                let t = inst.table();
                let app = self.env.app().await;
                let sql = format!("SELECT {col} FROM public.{t} WHERE id = {id}");
                let got = match simple_rows(&app, &sql).await {
                    Ok(rows) => rows.into_iter().next().and_then(|r| r.into_iter().next()),
                    Err(f) => {
                        return Err((
                            "refused-sound".into(),
                            format!("read-back {sql}: {} {}", f.code, short(&f.message)),
                        ));
                    }
                };
                let got = got.flatten();
                if got != want {
                    return Err((
                        "wrong-value".into(),
                        format!(
                            "{t}.{col} row {id} reads {got:?} through pgcloak, expected {want:?}"
                        ),
                    ));
                }
                let stored: Option<Option<Vec<u8>>> = direct
                    .query_opt(
                        format!("SELECT {col} FROM public.{t} WHERE id = {id}").as_str(),
                        &[],
                    )
                    .await
                    .map_err(|e| ("harness".to_owned(), format!("{e}")))?
                    .map(|r| r.get(0));
                let stored = stored.flatten();
                match (&stored, &want) {
                    (None, None) => Ok(()),
                    (Some(_), None) | (None, Some(_)) => Err((
                        "wrong-value".into(),
                        format!("{t}.{col} row {id}: stored NULL-ness differs ({want:?})"),
                    )),
                    (Some(bytes), Some(text)) => {
                        let rule = self.rules.column("public", &t, col).expect("rule");
                        let plain = self.ring.decrypt(&rule.key, bytes).map_err(|e| {
                            (
                                "not-encrypted".to_owned(),
                                format!("{t}.{col} row {id}: {e}"),
                            )
                        })?;
                        let ty = LogicalType::ALL
                            .into_iter()
                            .find(|ty| ty.name() == rule.ty.name())
                            .unwrap_or(rule.ty);
                        let want = text_to_canonical(ty, text.as_bytes(), &TextContext::default())
                            .map_err(|e| ("harness".to_owned(), format!("{e}")))?;
                        if plain.as_slice() != want.as_slice() {
                            return Err((
                                "wrong-value".into(),
                                format!(
                                    "{t}.{col} row {id} decrypts to {:?}, expected {text:?}",
                                    String::from_utf8_lossy(&plain)
                                ),
                            ));
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// Runs the probe's steps straight on the twin table and reads `col` of row `id` there.
    async fn twin_value(
        &self,
        p: &Probe,
        inst: &Instance,
        col: &str,
        id: i32,
    ) -> Result<Option<String>, String> {
        let c = leak::quiet_superuser(&self.env.db, APP_DATABASE).await;
        c.batch_execute("SET ROLE app")
            .await
            .map_err(|e| e.to_string())?;
        let tw = format!("tw{}", inst.k);
        for st in &p.steps {
            let st = inst.step(st, &tw);
            let sql = splice(&st.sql, &st.params);
            let res = c.simple_query(&sql).await;
            if let Err(e) = res
                && st.role != Role::Any
            {
                return Err(format!(
                    "PostgreSQL itself fails `{sql}` on the plain twin ({e}), but pgcloak accepted it"
                ));
            }
        }
        // Read in the default (ISO) formats, whatever the steps set.
        let _ = c.batch_execute("ROLLBACK; RESET ALL").await;
        simple_cell(
            &c,
            &format!("SELECT ({col})::text FROM {tw} WHERE id = {id}"),
        )
        .await
        .map_err(|e| e.to_string())
    }
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The first cell of the first row of a simple query.
async fn simple_cell(c: &Client, sql: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let msgs = within(HANG, c.simple_query(sql)).await?;
    Ok(msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        })
        .flatten())
}

fn failure(e: &tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => Failure {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().unwrap_or_default().to_owned(),
        },
        None => Failure {
            code: "client".into(),
            message: format!("{e} / {e:?}"),
            detail: String::new(),
        },
    }
}

async fn simple_rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, Failure> {
    let msgs = within(HANG, c.simple_query(sql))
        .await
        .map_err(|e| failure(&e))?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect())
}

/// `v` as a SQL literal.
pub fn literal(v: &P) -> String {
    match v {
        P::T(s) => format!("'{}'", s.replace('\'', "''")),
        P::I(i) => i.to_string(),
        P::Null => "NULL".into(),
    }
}

/// `sql` with `$n` replaced by the literals of `params` (highest first, so `$1` does not
/// match `$10`).
pub fn splice(sql: &str, params: &[P]) -> String {
    let mut text = sql.to_owned();
    for (i, v) in params.iter().enumerate().rev() {
        text = text.replace(&format!("${}", i + 1), &literal(v));
    }
    text
}

/// A parameter on the wire: text format, or binary where tokio-postgres can encode the type.
#[derive(Debug)]
struct Wire {
    v: P,
    text: bool,
}

fn text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

impl Wire {
    fn binary_ok(&self, ty: &Type) -> bool {
        match &self.v {
            P::Null => true,
            P::T(s) => {
                text_like(ty)
                    || (*ty == Type::JSONB)
                    || (*ty == Type::JSON)
                    || (*ty == Type::INT4 && s.parse::<i32>().is_ok())
                    || (*ty == Type::INT8 && s.parse::<i64>().is_ok())
                    || (*ty == Type::INT2 && s.parse::<i16>().is_ok())
                    || (*ty == Type::BYTEA && s.starts_with("\\x") && hex::decode(&s[2..]).is_ok())
            }
            P::I(_) => matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8) || text_like(ty),
        }
    }
}

impl ToSql for Wire {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let s = match &self.v {
            P::Null => return Ok(IsNull::Yes),
            P::T(s) => s.clone(),
            P::I(i) => i.to_string(),
        };
        if self.text || !self.binary_ok(ty) {
            out.extend_from_slice(s.as_bytes());
            return Ok(IsNull::No);
        }
        match *ty {
            Type::INT4 => out.extend_from_slice(&s.parse::<i32>()?.to_be_bytes()),
            Type::INT8 => out.extend_from_slice(&s.parse::<i64>()?.to_be_bytes()),
            Type::INT2 => out.extend_from_slice(&s.parse::<i16>()?.to_be_bytes()),
            Type::BYTEA => out.extend_from_slice(&hex::decode(&s[2..])?),
            Type::JSONB => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
            }
            _ => out.extend_from_slice(s.as_bytes()),
        }
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, ty: &Type) -> Format {
        if self.text || !self.binary_ok(ty) {
            Format::Text
        } else {
            Format::Binary
        }
    }
    to_sql_checked!();
}

/// Any binary result cell as bytes.
struct RawCell(Vec<u8>);

impl<'a> postgres_types::FromSql<'a> for RawCell {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawCell(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A binary result row as text cells (as PostgreSQL's text output would show them for the
/// common types; bytea as `\x…`, anything else as `<type:hex>`).
fn render(row: &tokio_postgres::Row) -> Vec<Option<String>> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let raw: Option<RawCell> = row.get(i);
            let raw = raw?;
            let b = raw.0;
            Some(match *col.type_() {
                ref ty if text_like(ty) => String::from_utf8_lossy(&b).into_owned(),
                Type::INT2 if b.len() == 2 => i16::from_be_bytes([b[0], b[1]]).to_string(),
                Type::INT4 if b.len() == 4 => {
                    i32::from_be_bytes([b[0], b[1], b[2], b[3]]).to_string()
                }
                Type::INT8 if b.len() == 8 => {
                    i64::from_be_bytes(b[..8].try_into().unwrap_or_default()).to_string()
                }
                Type::BOOL => if b == [1] { "t" } else { "f" }.to_owned(),
                Type::BYTEA => format!("\\x{}", hex::encode(&b)),
                Type::NUMERIC => row
                    .get::<_, Option<rust_decimal::Decimal>>(i)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                Type::DATE => row
                    .get::<_, Option<chrono::NaiveDate>>(i)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                Type::JSONB | Type::JSON => row
                    .get::<_, Option<serde_json::Value>>(i)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                ref other => format!("<{other}:{}>", hex::encode(&b)),
            })
        })
        .collect()
}

async fn run_tokio(c: &Client, driver: Driver, steps: &[Step]) -> Vec<Out> {
    let mut prepared: HashMap<String, tokio_postgres::Statement> = HashMap::new();
    let mut outs = Vec::new();
    for st in steps {
        let res = match driver {
            Driver::Simple => simple_rows(c, &splice(&st.sql, &st.params)).await,
            _ => {
                let wires: Vec<Wire> = st
                    .params
                    .iter()
                    .map(|v| Wire {
                        v: v.clone(),
                        text: driver == Driver::ExtText,
                    })
                    .collect();
                let refs: Vec<&(dyn ToSql + Sync)> =
                    wires.iter().map(|w| w as &(dyn ToSql + Sync)).collect();
                let stmt = match st.name.as_ref().and_then(|n| prepared.get(n)) {
                    Some(s) => Ok(s.clone()),
                    None => match &st.types {
                        Some(types) => within(HANG, c.prepare_typed(&st.sql, types)).await,
                        None => within(HANG, c.prepare(&st.sql)).await,
                    },
                };
                match stmt {
                    Err(e) => Err(failure(&e)),
                    Ok(stmt) => {
                        if let Some(n) = &st.name {
                            prepared.insert(n.clone(), stmt.clone());
                        }
                        within(HANG, c.query(&stmt, &refs))
                            .await
                            .map(|rows| rows.iter().map(render).collect())
                            .map_err(|e| failure(&e))
                    }
                }
            }
        };
        outs.push(match res {
            Ok(r) => Out::Ok(r),
            Err(f) => Out::Err(f),
        });
    }
    outs
}

/// psql: `\echo` markers between the steps, `ON_ERROR_STOP`, verbose errors (SQLSTATE).
async fn run_psql(env: &TestEnv, steps: &[Step], options: Option<&str>) -> Vec<Out> {
    let mut ci = env.proxy_conninfo(APP_USER, APP_PASSWORD, APP_DATABASE);
    if let Some(o) = options {
        ci.push_str(&format!(
            " options='{}'",
            o.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    let mut args: Vec<String> = vec![
        "-v".into(),
        "VERBOSITY=verbose".into(),
        "-P".into(),
        "null=<NULL>".into(),
    ];
    for (i, st) in steps.iter().enumerate() {
        args.push("-c".into());
        args.push(format!("\\echo @@step {i}"));
        args.push("-c".into());
        args.push(splice(&st.sql, &st.params));
    }
    args.push("-c".into());
    args.push("\\echo @@end".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_code, stdout, stderr) = env.psql_args(&ci, &refs).await;
    let mut outs: Vec<Out> = vec![Out::NotRun; steps.len()];
    let mut cur: Option<usize> = None;
    let mut ended = false;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("@@step ") {
            cur = n.trim().parse().ok();
            if let Some(i) = cur {
                outs[i] = Out::Ok(Vec::new());
            }
        } else if line == "@@end" {
            ended = true;
        } else if let Some(i) = cur
            && let Out::Ok(rows) = &mut outs[i]
            && !line.is_empty()
        {
            rows.push(
                line.split('|')
                    .map(|c| (c != "<NULL>").then(|| c.to_owned()))
                    .collect(),
            );
        }
    }
    if !ended && let Some(i) = cur {
        let err = stderr
            .lines()
            .find(|l| l.starts_with("ERROR:"))
            .unwrap_or(stderr.trim());
        let rest = err.trim_start_matches("ERROR:").trim();
        let (code, message) = match rest.split_once(": ") {
            Some((c, m)) if c.len() == 5 => (c.to_owned(), m.to_owned()),
            _ => ("psql".to_owned(), stderr.clone()),
        };
        let detail = stderr
            .lines()
            .filter(|l| l.starts_with("DETAIL:"))
            .collect::<Vec<_>>()
            .join("\n");
        outs[i] = Out::Err(Failure {
            code,
            message,
            detail,
        });
    }
    outs
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run tests/clients/setup (a missing client is a failure, not a skip)",
        path.display()
    );
    path
}

/// Runs a batch of instances through the Python (psycopg) or Node (pg) runner.
async fn run_script(
    env: &TestEnv,
    lang: &str,
    jobs: &[(usize, Driver, Vec<Step>)],
) -> Vec<(usize, Vec<Out>)> {
    let spec: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(k, d, steps)| {
            serde_json::json!({
                "id": k,
                "mode": match d {
                    Driver::PyBin => "binary",
                    Driver::PyPrep => "prepare",
                    _ => "text",
                },
                "steps": steps.iter().map(|s| serde_json::json!({
                    "sql": s.sql,
                    "name": s.name,
                    "params": s.params.iter().map(|p| match p {
                        P::T(s) => serde_json::Value::String(s.clone()),
                        P::I(i) => serde_json::json!(i),
                        P::Null => serde_json::Value::Null,
                    }).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let file = env.db.dir().join(format!("adv-{lang}.json"));
    std::fs::write(&file, serde_json::to_vec(&spec).expect("json")).expect("write spec");
    let (program, script, cwd) = match lang {
        "python" => (
            require(repo().join("tests/clients/.venv/bin/python")),
            require(repo().join("tests/clients/python/adversarial_runner.py")),
            repo().join("tests/clients/python"),
        ),
        _ => (
            require(PathBuf::from("/usr/bin/node")),
            require(repo().join("tests/clients/node/adversarial_runner.js")),
            repo().join("tests/clients/node"),
        ),
    };
    if lang == "node" {
        require(repo().join("tests/clients/node/node_modules/pg/package.json"));
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(script)
        .arg(&file)
        .env("PGCLOAK_PORT", env.proxy_addr().port().to_string())
        .env("PGCLOAK_USER", APP_USER)
        .env("PGCLOAK_PASSWORD", APP_PASSWORD)
        .env("PGCLOAK_DB", APP_DATABASE)
        .env("PGCLOAK_SSLROOTCERT", env.db.ca_cert_path())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("runner hung")
        .expect("run runner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{lang} runner failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_str(stdout.trim()).expect("runner output is JSON");
    results
        .iter()
        .map(|r| {
            let k = r["id"].as_u64().expect("id") as usize;
            let outs = r["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| {
                    if s["ran"] == serde_json::Value::Bool(false) {
                        Out::NotRun
                    } else if s["ok"] == serde_json::Value::Bool(true) {
                        Out::Ok(
                            s["rows"]
                                .as_array()
                                .map(|rows| {
                                    rows.iter()
                                        .map(|row| {
                                            row.as_array()
                                                .map(|cells| {
                                                    cells
                                                        .iter()
                                                        .map(|c| c.as_str().map(str::to_owned))
                                                        .collect()
                                                })
                                                .unwrap_or_default()
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        )
                    } else {
                        Out::Err(Failure {
                            code: s["code"].as_str().unwrap_or("client").to_owned(),
                            message: s["message"].as_str().unwrap_or_default().to_owned(),
                            detail: s["detail"].as_str().unwrap_or_default().to_owned(),
                        })
                    }
                })
                .collect();
            (k, outs)
        })
        .collect()
}

#[test]
fn ciphertext_is_recognised_in_text() {
    let env = format!("\\x0102{}", "00".repeat(30));
    assert!(looks_like_ciphertext(&env));
    assert!(looks_like_ciphertext(&format!(
        "Key (s)=({env}) already exists."
    )));
    assert!(!looks_like_ciphertext("\\x0101"));
    assert!(!looks_like_ciphertext("plain text"));
    assert_eq!(
        splice(
            "VALUES ($1, $10, $2)",
            &(1..=10).map(P::I).collect::<Vec<_>>()
        ),
        "VALUES (1, 10, 2)"
    );
}
