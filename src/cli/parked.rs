//! The `parked` subcommand: list, retry and drop jobs that failed
//! permanently (invariant 6: nothing lost on bad input; a parked job waits
//! for the operator and blocks only its own conversation or contact).

use std::time::SystemTime;

use crate::cli::context::{human_duration, load_config, open_existing_state, plural};
use crate::config::ConfigArgs;
use crate::outbox::{self, JobKind, ParkedJob, ParkedSelection};

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
A job is parked when GLPI refuses it for a reason a retry cannot fix (a validation \
error, a missing right, a deleted requester...) or when the Chatwoot record cannot be \
synced (e.g. a contact with no name, email or phone). A parked job blocks only the jobs \
of its own conversation or contact, which wait behind it so order is kept; everything \
else keeps flowing.

Typical use:
  chatwoot-glpi-bridge parked list          # what is stuck and why
  (fix the cause: GLPI rights, entity, the contact in Chatwoot...)
  chatwoot-glpi-bridge parked retry 17      # or: parked retry --all
  chatwoot-glpi-bridge parked drop 17       # give up on one job; the jobs behind it run

A running bridge picks retried jobs up on its next outbox poll. Retrying is safe: a job \
that may have reached GLPI before is first looked up there, never created twice.")]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List parked jobs with their reason, oldest first.
    List,
    /// Make parked jobs runnable again (after fixing the cause).
    Retry {
        /// The job id shown by `parked list`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        job_id: Option<i64>,
        /// Retry every parked job.
        #[arg(long)]
        all: bool,
    },
    /// Delete a parked job for good: GLPI will never see that change (a
    /// later change of the same record is synced normally).
    Drop {
        /// The job id shown by `parked list`.
        job_id: i64,
    },
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let mut state = open_existing_state(&config)?;
    let mut out = std::io::stdout().lock();
    run_action(&args.action, &mut state, &mut out)
}

/// Runs one action against the state file, writing what it did to `out`.
pub fn run_action(
    action: &Action,
    state: &mut crate::state::State,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    match action {
        Action::List => {
            let jobs = outbox::parked(state.conn())?;
            write!(out, "{}", render_list(&jobs, SystemTime::now()))?;
        }
        Action::Retry { job_id, all } => {
            let which = match (job_id, all) {
                (_, true) => ParkedSelection::All,
                (Some(id), false) => ParkedSelection::One(*id),
                (None, false) => anyhow::bail!("name a job id or use --all"),
            };
            let n = outbox::retry_parked(state.conn(), which)?;
            writeln!(
                out,
                "{n} job{} back in the queue; a running bridge picks {} up on its next outbox poll.",
                plural(n as u64),
                if n == 1 { "it" } else { "them" }
            )?;
        }
        Action::Drop { job_id } => {
            let job = outbox::parked(state.conn())?
                .into_iter()
                .find(|j| j.id == *job_id);
            outbox::drop_parked(state.conn_mut(), *job_id)?;
            let what = job
                .map(|j| describe_job(&j.kind))
                .unwrap_or_else(|| format!("job {job_id}"));
            writeln!(
                out,
                "dropped job {job_id} ({what}); the jobs behind it in its queue can run now."
            )?;
        }
    }
    Ok(())
}

/// The `parked list` text.
pub fn render_list(jobs: &[ParkedJob], now: SystemTime) -> String {
    if jobs.is_empty() {
        return "No parked jobs.\n".to_owned();
    }
    let mut text = format!(
        "{} parked job{} (each blocks only its own queue):\n\n",
        jobs.len(),
        plural(jobs.len() as u64)
    );
    for job in jobs {
        let age = now.duration_since(job.parked_at).unwrap_or_default();
        text.push_str(&format!(
            "#{id}  account {account}  {what}\n     parked {age} ago after {attempts} attempt{s}; \
             {blocked} job{bs} waiting behind it in {queue}\n     reason: {reason}\n",
            id = job.id,
            account = job.account_id,
            what = describe_job(&job.kind),
            age = human_duration(age),
            attempts = job.attempts,
            s = plural(u64::from(job.attempts)),
            blocked = job.blocked_jobs,
            bs = plural(job.blocked_jobs),
            queue = job.queue,
            reason = job.reason,
        ));
    }
    text.push_str(
        "\nFix the cause, then `parked retry ID` (or `parked retry --all`); \
         `parked drop ID` gives up on one job.\n",
    );
    text
}

/// "create_followup for message 901 of conversation 42".
pub fn describe_job(kind: &JobKind) -> String {
    let name = kind.name();
    match kind {
        JobKind::SyncContact { contact } | JobKind::ResyncContact { contact } => {
            format!("{name} for contact {}", contact.id)
        }
        JobKind::CreateTicket { conversation, .. } | JobKind::ResyncTicket { conversation, .. } => {
            format!("{name} for conversation {}", conversation.id)
        }
        JobKind::UpdateTicket {
            conversation_id, ..
        }
        | JobKind::ChangeRequester {
            conversation_id, ..
        } => format!("{name} for conversation {conversation_id}"),
        JobKind::CreateFollowup {
            conversation_id,
            message,
        }
        | JobKind::UpdateFollowup {
            conversation_id,
            message,
        } => format!(
            "{name} for message {} of conversation {conversation_id}",
            message.id
        ),
        JobKind::WriteBackContact { contact_id } => format!("{name} for contact {contact_id}"),
        JobKind::WriteBackConversation { conversation_id } => {
            format!("{name} for conversation {conversation_id}")
        }
    }
}
