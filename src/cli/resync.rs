//! The `resync` subcommand: queue the jobs that make GLPI show one contact
//! or conversation as Chatwoot has it now (see `planner::resync`), then
//! optionally wait for a running bridge to run them.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cli::context::{connect_database, load_config, open_existing_state, plural};
use crate::config::Config;
use crate::outbox;
use crate::planner::resync::{self, CurrentMessages, ResyncPlanned};
use crate::planner::{ConfiguredAccounts, SettingsBook};
use crate::state::{mappings, State};

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Use it when GLPI no longer shows a record as Chatwoot has it: a ticket or user deleted in \
GLPI, a status edited there by hand, a job dropped with `parked drop`, or history the \
`backfill` policy left out that you now want in GLPI.

What it does, through the running bridge's outbox (the bridge need not be running; the jobs \
wait for it):
  contact ID       reads the contact's GLPI User/Contact back; if GLPI no longer has it, \
finds it again by email, phone or login, else creates it; sends the name, phone and email \
again; writes the id back into Chatwoot.
  conversation ID  reads the ticket back (finds it by its marker, else creates it again, if \
GLPI lost it), sets its status and priority, makes the conversation's contact its requester \
again, posts every message GLPI does not show yet, and writes the ids back.

It is idempotent: everything is looked up in GLPI before anything is created, so running it \
twice creates nothing twice. IDs are Chatwoot's database ids (`contacts.id`, \
`conversations.id`), not the conversation number shown in Chatwoot's interface.

  chatwoot-glpi-bridge resync conversation 4711 --wait
  chatwoot-glpi-bridge resync contact 42")]
pub struct Args {
    #[command(subcommand)]
    pub target: Target,
    /// Wait until the bridge has run the jobs, and say what GLPI now holds.
    #[arg(long, global = true)]
    pub wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, global = true, default_value_t = 120, value_name = "SECS")]
    pub wait_timeout: u64,
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
}

#[derive(Clone, Copy, Debug, clap::Subcommand)]
pub enum Target {
    /// A Chatwoot contact (`contacts.id`).
    Contact {
        /// The contact's id.
        id: i64,
    },
    /// A Chatwoot conversation (`conversations.id`) with its messages.
    Conversation {
        /// The conversation's id.
        id: i64,
    },
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let mut state = open_existing_state(&config)?;
    let planned = plan(&config, &mut state, args.target).await?;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    write!(out, "{}", describe_planned(args.target, &planned))?;
    if args.wait {
        out.flush()?;
        let outcome = wait_for(
            &state,
            args.target,
            &planned,
            Duration::from_secs(args.wait_timeout),
        )?;
        write!(out, "{outcome}")?;
    }
    Ok(())
}

/// Reads what `target` needs from Chatwoot now, then queues its resync
/// jobs in the state file.
pub async fn plan(
    config: &Config,
    state: &mut State,
    target: Target,
) -> anyhow::Result<ResyncPlanned> {
    ensure_backfilled(state)?;
    let current = match target {
        Target::Contact { .. } => CurrentMessages::default(),
        Target::Conversation { id } => {
            let mut client = connect_database(config).await?;
            read_current(&mut client, id).await?
        }
    };
    queue(state, config.glpi_account.clone(), target, &current)
}

fn ensure_backfilled(state: &State) -> anyhow::Result<()> {
    if !crate::state::replication::load(state.conn())?
        .backfill
        .is_complete()
    {
        anyhow::bail!(
            "the bridge has not finished its first backfill yet; resync once `status` shows \
             it complete"
        );
    }
    Ok(())
}

/// A conversation's messages and attachments as Chatwoot has them now.
pub async fn read_current(
    client: &mut tokio_postgres::Client,
    conversation_id: i64,
) -> anyhow::Result<CurrentMessages> {
    let (messages, attachments) =
        crate::replication::current::conversation_messages(client, conversation_id)
            .await
            .context("reading the conversation's messages from Chatwoot's database")?;
    Ok(CurrentMessages {
        messages,
        attachments,
    })
}

/// Queues the resync jobs of `target` in one transaction on the state file
/// (`configured`: the accounts the bridge's own configuration names).
pub fn queue(
    state: &mut State,
    configured: ConfiguredAccounts,
    target: Target,
    current: &CurrentMessages,
) -> anyhow::Result<ResyncPlanned> {
    ensure_backfilled(state)?;
    let tx = crate::state::write_transaction(state.conn_mut())?;
    let book = SettingsBook::load(&tx, configured)?;
    let planned = match target {
        Target::Contact { id } => resync::contact(&tx, &book, id)?,
        Target::Conversation { id } => resync::conversation(&tx, &book, id, current)?,
    };
    tx.commit()?;
    Ok(planned)
}

/// What was queued, for the operator.
pub fn describe_planned(target: Target, planned: &ResyncPlanned) -> String {
    let what = subject(target);
    let followups: Vec<i64> = planned.jobs.iter().filter_map(|j| j.message_id).collect();
    let mut text = format!("Resync of {what} (account {}):\n", planned.account_id);
    for job in planned.jobs.iter().filter(|j| j.message_id.is_none()) {
        let note = if job.already_queued {
            " (already queued: nothing added)"
        } else {
            ""
        };
        text.push_str(&format!("  job #{} {}{note}\n", job.id, job.kind));
    }
    if !followups.is_empty() {
        text.push_str(&format!(
            "  {} create_followup job{} (messages {}); each posts only what GLPI lacks\n",
            followups.len(),
            plural(followups.len() as u64),
            compact_ids(&followups)
        ));
    }
    text.push_str(
        "A running bridge picks these up on its next outbox poll (`status` shows the queue).\n",
    );
    text
}

fn subject(target: Target) -> String {
    match target {
        Target::Contact { id } => format!("contact {id}"),
        Target::Conversation { id } => format!("conversation {id}"),
    }
}

/// "3, 5, 8" or "3 … 97" for long lists.
fn compact_ids(ids: &[i64]) -> String {
    match ids {
        [first, .., last] if ids.len() > 6 => format!("{first} … {last}"),
        _ => ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Polls the outbox until every queued job is done, one is parked, or the
/// timeout passes; returns the outcome in words (an error if not done).
pub fn wait_for(
    state: &State,
    target: Target,
    planned: &ResyncPlanned,
    timeout: Duration,
) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let mut waiting = 0;
        for job in &planned.jobs {
            if let Some(queued) = outbox::queued_job_state(state.conn(), job.id)? {
                if let Some(reason) = queued.parked_reason {
                    anyhow::bail!(
                        "job #{} ({}) was parked: {reason}\nFix the cause, then `parked retry {}`",
                        job.id,
                        job.kind,
                        job.id
                    );
                }
                waiting += 1;
            }
        }
        if waiting == 0 {
            return outcome(state, target);
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "{waiting} of the resync's jobs still wait after {}s: is the bridge running \
                 (with this state file)? `status` shows the outbox; the jobs stay queued",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What GLPI holds for `target` now, from the mappings.
fn outcome(state: &State, target: Target) -> anyhow::Result<String> {
    let conn = state.conn();
    Ok(match target {
        Target::Contact { id } => match mappings::contact_link(conn, id)? {
            Some(link) => format!(
                "Done: contact {id} is GLPI {} {}.\n",
                link.person_type.itemtype(),
                link.glpi_id
            ),
            None => format!("Done, but contact {id} has no GLPI record.\n"),
        },
        Target::Conversation { id } => match mappings::ticket_link(conn, id)? {
            Some(link) => {
                let followups = mappings::followup_count(conn, id)?;
                format!(
                    "Done: conversation {id} is GLPI Ticket {} with {followups} followup{}.\n",
                    link.glpi_ticket_id,
                    plural(followups)
                )
            }
            None => format!("Done, but conversation {id} has no GLPI ticket.\n"),
        },
    })
}
