//! A ticket's requester: which Ticket_User row stands for a conversation's
//! contact (set by CreateTicket), and the ChangeRequester job that replaces
//! it when the conversation moves to another contact (a contact merge, or
//! an agent moving the conversation).
//!
//! The job reads the ticket's actors first and only adds the row that is
//! missing and removes the rows that are still there, so a run cut by a
//! crash and run again neither adds the requester twice nor fails on a row
//! already removed (invariant 2); the requester set is recorded with the
//! job's completion. GLPI users are never deleted: the old contact's GLPI
//! user stays, it is only no longer this ticket's requester.

use serde_json::{json, Value};

use super::contact::ensure_contact;
use super::content::{self, DescriptionExtras};
use super::job::{JobContext, JobError};
use super::person::PersonFields;
use crate::glpi::{GlpiError, Requester, TicketUser};
use crate::outbox::{ContactSnapshot, Job};
use crate::state::mappings::{self, ContactLink, GlpiPersonType, TicketLink, TicketRequester};

/// GLPI's "New" status, which GLPI puts a ticket back to when an actor is
/// removed while nobody is assigned (`CommonITILActor::post_deleteFromDB`).
const STATUS_NEW: i64 = 1;

/// The reason a requester change waits when its ticket is gone from GLPI.
pub const TICKET_GONE: &str = "the conversation's GLPI ticket no longer exists (deleted in GLPI): \
     `parked drop` this job, then `resync conversation` creates the ticket again with the \
     conversation's current contact as requester";

/// The requester a contact's ticket gets: user mode, the contact's GLPI
/// User; contact mode, an email-only requester with the contact's email
/// (GLPI cannot make a Contact a ticket actor), or none without an email.
pub fn requester_of(person: Option<&(ContactLink, PersonFields)>) -> Requester {
    match person {
        Some((link, _)) if link.person_type == GlpiPersonType::User => {
            Requester::User(link.glpi_id)
        }
        Some((_, fields)) => fields
            .email
            .clone()
            .map_or(Requester::None, Requester::Email),
        None => Requester::None,
    }
}

/// The requester a contact's recorded GLPI record stands for (used when the
/// bridge has no record of the row it set, e.g. a ticket created by an
/// older version).
fn requester_of_link(link: &ContactLink) -> Requester {
    match link.person_type {
        GlpiPersonType::User => Requester::User(link.glpi_id),
        GlpiPersonType::Contact => link
            .synced_fields
            .as_deref()
            .and_then(|s| serde_json::from_str::<PersonFields>(s).ok())
            .and_then(|fields| fields.email)
            .map_or(Requester::None, Requester::Email),
    }
}

fn requester_of_record(record: &TicketRequester) -> Requester {
    if record.glpi_user_id > 0 {
        Requester::User(record.glpi_user_id)
    } else if !record.alternative_email.is_empty() {
        Requester::Email(record.alternative_email.clone())
    } else {
        Requester::None
    }
}

/// What the mappings record for a ticket whose requester is `requester`.
pub fn requester_record(
    requester: &Requester,
    conversation_id: i64,
    contact_id: Option<i64>,
) -> TicketRequester {
    let (glpi_user_id, alternative_email) = match requester {
        Requester::None => (0, String::new()),
        Requester::User(id) => (*id, String::new()),
        Requester::Email(email) => (0, email.clone()),
    };
    TicketRequester {
        conversation_id,
        contact_id,
        glpi_user_id,
        alternative_email,
    }
}

/// GLPI's "Invalid email address" refusal of an actor.
pub fn refused_email(err: &GlpiError) -> bool {
    err.constant() == Some("ERROR_GLPI_ADD")
        && err
            .message()
            .is_some_and(|m| m.to_lowercase().contains("email"))
}

/// The ChangeRequester job: make the new contact's GLPI record exist, add
/// it as the ticket's requester, remove the requester the old contact had,
/// put back the status GLPI reset on that removal, and (contact mode)
/// rewrite the contact details in the description.
pub async fn change_requester_job(
    ctx: &JobContext,
    job: &Job,
    conversation_id: i64,
    previous_contact_id: Option<i64>,
    contact: Option<&ContactSnapshot>,
) -> Result<(), JobError> {
    let Some(ticket) = ctx.with_state(|s| mappings::ticket_link(s.conn(), conversation_id))? else {
        // No ticket (its create was dropped): `resync conversation` creates
        // it with the conversation's contact of that time.
        return ctx.complete(job, |_| Ok(())).await;
    };
    let person = match contact {
        Some(contact) => ensure_contact(ctx, contact).await?,
        None => None,
    };
    let mut wanted = requester_of(person.as_ref());
    let recorded = ctx.with_state(|s| mappings::ticket_requester(s.conn(), conversation_id))?;
    let previous_link = match previous_contact_id {
        Some(id) => ctx.with_state(|s| mappings::contact_link(s.conn(), id))?,
        None => None,
    };
    let old = [
        recorded
            .as_ref()
            .map_or(Requester::None, requester_of_record),
        previous_link
            .as_ref()
            .map_or(Requester::None, requester_of_link),
    ];

    let ticket_id = ticket.glpi_ticket_id;
    let rows = actors(ctx, ticket_id).await?;
    if wanted != Requester::None
        && !rows.iter().any(|row| wanted.is_row(row))
        && !add(ctx, ticket_id, &wanted).await?
    {
        wanted = Requester::None;
    }
    for row in &rows {
        if old.iter().any(|o| o.is_row(row)) && !wanted.is_row(row) {
            ctx.glpi.delete("Ticket_User", row.id).await?;
        }
    }
    let tail = restore_ticket(ctx, &ticket, person.as_ref()).await?;

    let record = requester_record(&wanted, conversation_id, contact.map(|c| c.id));
    ctx.complete(job, move |tx| {
        mappings::record_requester(tx, &record)?;
        if let Some(tail) = &tail {
            mappings::record_description_tail(tx, conversation_id, tail)?;
        }
        Ok(())
    })
    .await
}

/// The ticket's actors; a ticket gone from GLPI parks the job.
async fn actors(ctx: &JobContext, ticket_id: i64) -> Result<Vec<TicketUser>, JobError> {
    match ctx.glpi.list_ticket_users(ticket_id).await {
        Err(e) if e.is_not_found() => Err(JobError::Park(TICKET_GONE.to_owned())),
        other => Ok(other?),
    }
}

/// Adds `requester` to the ticket. `false` when GLPI refuses its email
/// (stricter than Chatwoot): the ticket is then left without requester from
/// us, as the create path does.
async fn add(ctx: &JobContext, ticket_id: i64, requester: &Requester) -> Result<bool, JobError> {
    let Some(input) = requester.ticket_user_input(ticket_id) else {
        return Ok(true);
    };
    match ctx.glpi.create("Ticket_User", &input).await {
        Ok(_) => Ok(true),
        Err(err) if refused_email(&err) => {
            tracing::warn!(ticket = ticket_id, error = %err, "GLPI refused the new requester's email; the ticket is left without requester");
            Ok(false)
        }
        // A lost answer, or GLPI's silent refusal (`""`: the row exists
        // already, e.g. added meanwhile, or the user is gone): look again.
        Err(err) if err.is_unknown_outcome() || err.constant() == Some("ERROR_GLPI_ADD") => {
            if actors(ctx, ticket_id)
                .await?
                .iter()
                .any(|r| requester.is_row(r))
            {
                return Ok(true);
            }
            if err.is_unknown_outcome() {
                return Err(err.into());
            }
            Err(JobError::Park(format!(
                "GLPI refused to add {requester:?} as requester of ticket {ticket_id} ({err}); \
                 if that GLPI user was deleted, run `resync contact` for the conversation's \
                 contact, then `parked retry` this job"
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// After the actors changed: puts back the status GLPI reset to New (it
/// does so whenever an actor is removed while nobody is assigned and the
/// ticket is not solved or closed), and in contact mode rewrites the
/// contact details at the end of the description. Returns the new
/// description tail to record, if it changed.
async fn restore_ticket(
    ctx: &JobContext,
    ticket: &TicketLink,
    person: Option<&(ContactLink, PersonFields)>,
) -> Result<Option<String>, JobError> {
    let ticket_id = ticket.glpi_ticket_id;
    let Some(current) = ctx.glpi.get("Ticket", ticket_id).await? else {
        return Err(JobError::Park(TICKET_GONE.to_owned()));
    };
    let mut input = serde_json::Map::new();
    let status = current.get("status").and_then(Value::as_i64);
    if let Some(sent) = ticket.glpi_status.filter(|s| *s != STATUS_NEW) {
        if status == Some(STATUS_NEW) {
            input.insert("status".into(), json!(sent));
        }
    }
    let tail = new_description_tail(ctx, ticket, person);
    if let (Some(new_tail), Some(old_tail)) = (&tail, &ticket.description_tail) {
        let description = current.get("content").and_then(Value::as_str).unwrap_or("");
        if let Some(message) = description.strip_suffix(old_tail.as_str()) {
            input.insert("content".into(), json!(format!("{message}{new_tail}")));
        } else if !description.ends_with(new_tail.as_str()) {
            tracing::warn!(
                ticket = ticket_id,
                "the ticket description was edited in GLPI; its contact details are left as they are"
            );
        }
    }
    if !input.is_empty() {
        ctx.glpi
            .update("Ticket", ticket_id, &Value::Object(input))
            .await?;
    }
    Ok(tail)
}

/// Contact mode: the description tail naming the new contact, when it
/// differs from the recorded one (user mode names no contact there).
fn new_description_tail(
    ctx: &JobContext,
    ticket: &TicketLink,
    person: Option<&(ContactLink, PersonFields)>,
) -> Option<String> {
    if ctx.settings.person_type != GlpiPersonType::Contact {
        return None;
    }
    let first_message_id = ticket.first_message_id?;
    let old_tail = ticket.description_tail.as_deref()?;
    let details = person.map(|(_, fields)| fields.details());
    let link = ctx
        .frontend_url
        .as_deref()
        .zip(ticket.display_id)
        .map(|(url, display_id)| content::conversation_link(url, ticket.account_id, display_id));
    let tail = content::description_tail(
        ticket.account_id,
        ticket.conversation_id,
        first_message_id,
        &DescriptionExtras {
            conversation_link: link.as_deref(),
            contact_details: details.as_deref(),
        },
    );
    (tail != old_tail).then_some(tail)
}
