//! ResyncContact and ResyncTicket jobs (the operator's `resync`): unlike the
//! steady-state jobs, which trust the mappings, these read the record back
//! from GLPI first. A record GLPI no longer has is looked up again (by
//! email/phone/login, or by the ticket marker) and created only if absent,
//! so the jobs stay idempotent (invariant 2); a record in GLPI's trash parks
//! the job, since restoring or purging it is the operator's call.

use serde_json::{json, Value};

use super::contact::{complete_link, fields_of, find_or_create, update_input, NOT_IDENTIFIABLE};
use super::followup::followups_by_message;
use super::job::{enqueue_conversation_write_back, JobContext, JobError};
use super::ticket::{create_ticket_job, glpi_priority, glpi_status};
use crate::outbox::{ContactSnapshot, ConversationSnapshot, Job, MessageSnapshot};
use crate::state::mappings;

/// What GLPI holds for a mapped id.
enum InGlpi {
    Present(Value),
    Trashed,
    Gone,
}

async fn read_back(ctx: &JobContext, itemtype: &str, id: i64) -> Result<InGlpi, JobError> {
    Ok(match ctx.glpi.get(itemtype, id).await? {
        None => InGlpi::Gone,
        Some(item) if int_field(&item, "is_deleted") == Some(1) => InGlpi::Trashed,
        Some(item) => InGlpi::Present(item),
    })
}

/// An integer field, as GLPI sends it (a number, or a numeric string).
fn int_field(item: &Value, name: &str) -> Option<i64> {
    match item.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn trashed(itemtype: &str, id: i64, what: &str) -> JobError {
    JobError::Park(format!(
        "GLPI {itemtype} {id} of {what} is in GLPI's trash: restore it there (then retry this \
         job), or purge it so the retry creates a new one"
    ))
}

/// The ResyncContact job: the contact's GLPI record exists and shows the
/// contact's current fields.
pub async fn resync_contact_job(
    ctx: &JobContext,
    job: &Job,
    contact: &ContactSnapshot,
) -> Result<(), JobError> {
    let Some(fields) = fields_of(ctx, contact) else {
        return Err(JobError::Park(NOT_IDENTIFIABLE.to_owned()));
    };
    let _guard = ctx.contact_locks.lock(contact.id).await;
    let person_type = ctx.settings.person_type;
    let itemtype = person_type.itemtype();
    let synced = serde_json::to_string(&fields).expect("fields serialize");
    let link = ctx
        .with_state(|s| mappings::contact_link(s.conn(), contact.id))?
        .filter(|l| l.person_type == person_type);
    if let Some(link) = link {
        match read_back(ctx, itemtype, link.glpi_id).await? {
            InGlpi::Present(_) => {
                ctx.glpi
                    .update(itemtype, link.glpi_id, &update_input(&fields, &link))
                    .await?;
                return complete_link(ctx, job, contact, link.glpi_id, synced, true).await;
            }
            InGlpi::Trashed => {
                return Err(trashed(
                    itemtype,
                    link.glpi_id,
                    &format!("contact {}", contact.id),
                ))
            }
            InGlpi::Gone => tracing::info!(
                contact = contact.id,
                glpi_id = link.glpi_id,
                "the contact's GLPI {itemtype} no longer exists; looking it up again"
            ),
        }
    }
    let glpi_id = find_or_create(ctx, &fields).await?;
    complete_link(ctx, job, contact, glpi_id, synced, true).await
}

/// The ResyncTicket job: the conversation's ticket exists with the current
/// status and priority, and the followup links are exactly the followups
/// GLPI has (so the CreateFollowup jobs behind this one post the missing
/// ones and skip the others).
pub async fn resync_ticket_job(
    ctx: &JobContext,
    job: &Job,
    conversation: &ConversationSnapshot,
    contact: Option<&ContactSnapshot>,
    first_message: Option<&MessageSnapshot>,
) -> Result<(), JobError> {
    let link = ctx.with_state(|s| mappings::ticket_link(s.conn(), conversation.id))?;
    if let Some(link) = link {
        let ticket_id = link.glpi_ticket_id;
        match read_back(ctx, "Ticket", ticket_id).await? {
            InGlpi::Present(ticket) => {
                let status = glpi_status(conversation.status);
                let priority = glpi_priority(conversation.priority);
                if int_field(&ticket, "status") != Some(status)
                    || int_field(&ticket, "priority") != Some(priority)
                {
                    ctx.glpi
                        .update(
                            "Ticket",
                            ticket_id,
                            &json!({ "status": status, "priority": priority }),
                        )
                        .await?;
                }
                let found = followups_by_message(ctx, ticket_id).await?;
                let (conversation_id, account_id) = (conversation.id, conversation.account_id);
                return ctx
                    .complete(job, move |tx| {
                        mappings::replace_followups(tx, conversation_id, &found)?;
                        mappings::record_ticket_state(tx, conversation_id, status, priority)?;
                        enqueue_conversation_write_back(tx, account_id, conversation_id)
                    })
                    .await;
            }
            InGlpi::Trashed => {
                return Err(trashed(
                    "Ticket",
                    ticket_id,
                    &format!("conversation {}", conversation.id),
                ))
            }
            InGlpi::Gone => {
                tracing::info!(
                    conversation = conversation.id,
                    ticket_id,
                    "the conversation's GLPI ticket no longer exists; looking it up by marker, \
                     else creating it again"
                );
                let conversation_id = conversation.id;
                ctx.with_state(|s| mappings::forget_ticket(s.conn(), conversation_id))?;
            }
        }
    }
    let Some(first_message) = first_message else {
        // Nothing to create the ticket from (the planner refuses this case;
        // kept safe for a job written by another version).
        return ctx.complete(job, |_| Ok(())).await;
    };
    create_ticket_job(ctx, job, conversation, contact, first_message).await
}
