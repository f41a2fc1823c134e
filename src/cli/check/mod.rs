//! The `check` subcommand: a preflight an operator runs before `run` (and
//! after changing anything). One pass/fail line per requirement, each failure
//! with the fix (invariant 6: misconfiguration fails fast with a message that
//! says what to fix). It only reads: it creates no publication or slot and
//! sends GLPI nothing but initSession and killSession.

mod database;
mod glpi;

use std::fmt::Write as _;

use crate::cli::context::load_config;
use crate::config::{Config, ConfigArgs};

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Checks, in order, with a PASS or FAIL line each (and NOTE lines that need no action):
  database     reachable with DATABASE_URL; PostgreSQL version, role and database
  tls          whether the connection is encrypted, under which sslmode, what is verified
  wal_level    is `logical` (needs a PostgreSQL restart to change)
  privileges   REPLICATION (or superuser); SELECT on the Chatwoot tables the bridge reads;
               UPDATE on contacts and conversations (GLPI ids are written back)
  tables       Chatwoot's tables exist (is DATABASE_URL Chatwoot's database?)
  publication  exists with the right tables, or can be created by `run`
  slot         exists with pgoutput in this database, or a free slot is left for `run`
  replication  a replication connection is accepted (pg_hba.conf)
  state file   usable, and belongs to this database
  GLPI         for each GLPI instance used by an enabled account (integration hook or
               GLPI_ACCOUNT_IDS): the API URL and tokens open a session (initSession,
               then killSession)

Exit code 0 only if every check passes. Nothing is created or changed.")]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    /// What is wrong and how to fix it.
    Fail(String),
    /// Information that needs no action (e.g. "will be created by `run`").
    Note(String),
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckLine {
    pub name: String,
    pub outcome: Outcome,
}

impl CheckLine {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckLine {
            name: name.into(),
            outcome: Outcome::Pass(detail.into()),
        }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckLine {
            name: name.into(),
            outcome: Outcome::Fail(detail.into()),
        }
    }

    pub fn note(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckLine {
            name: name.into(),
            outcome: Outcome::Note(detail.into()),
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Fail(_))
    }
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let lines = run_checks(&config).await;
    print!("{}", render(&lines));
    let failed = lines.iter().filter(|l| l.failed()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} check{} failed; fix {} and run `check` again",
            if failed == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

/// Runs every check; never stops at the first failure (the operator wants
/// the whole list), but skips checks that depend on a failed one.
pub async fn run_checks(config: &Config) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let client = database::check(config, &mut lines).await;
    glpi::check(config, client.as_ref(), &mut lines).await;
    lines
}

/// The report text.
pub fn render(lines: &[CheckLine]) -> String {
    let mut out = String::new();
    for line in lines {
        let (tag, detail) = match &line.outcome {
            Outcome::Pass(d) => ("PASS", d),
            Outcome::Fail(d) => ("FAIL", d),
            Outcome::Note(d) => ("NOTE", d),
        };
        let mut detail_lines = detail.lines();
        let _ = writeln!(
            out,
            "{tag}  {:<12} {}",
            line.name,
            detail_lines.next().unwrap_or_default()
        );
        for more in detail_lines {
            let _ = writeln!(out, "      {:<12} {more}", "");
        }
    }
    let failed = lines.iter().filter(|l| l.failed()).count();
    let passed = lines
        .iter()
        .filter(|l| matches!(l.outcome, Outcome::Pass(_)))
        .count();
    let _ = writeln!(out, "\n{passed} passed, {failed} failed.");
    out
}
