//! CreateTicket and UpdateTicket jobs: a conversation becomes one GLPI
//! Ticket (found again by its marker when a create is retried), and later
//! status/priority changes update it.

use serde_json::json;

use super::contact::ensure_contact;
use super::content::{self, DescriptionExtras};
use super::followup::{prepare, rendered};
use super::job::{enqueue_conversation_write_back, JobContext, JobError};
use super::requester::{refused_email, requester_of, requester_record};
use crate::glpi::{Criterion, Link, Requester, SearchQuery, SearchType};
use crate::outbox::{ContactSnapshot, ConversationSnapshot, Job, MessageSnapshot};
use crate::state::mappings::{self, GlpiPersonType, TicketLink};

/// Ticket search option 21: the description (content).
const TICKET_CONTENT_FIELD: u32 = 21;

/// The CreateTicket job: ensure the contact, then create the ticket (or find
/// the one an interrupted attempt created), record it, write it back.
pub async fn create_ticket_job(
    ctx: &JobContext,
    job: &Job,
    conversation: &ConversationSnapshot,
    contact: Option<&ContactSnapshot>,
    first_message: &MessageSnapshot,
) -> Result<(), JobError> {
    let existing = ctx.with_state(|s| mappings::ticket_link(s.conn(), conversation.id))?;
    if existing.is_some() {
        // Already created (or adopted from Chatwoot's keys).
        return ctx.complete(job, |_| Ok(())).await;
    }
    let person = match contact {
        Some(contact) => ensure_contact(ctx, contact).await?,
        None => None,
    };
    let mut requester = requester_of(person.as_ref());
    let contact_mode = ctx.settings.person_type == GlpiPersonType::Contact;
    let details = person
        .as_ref()
        .filter(|_| contact_mode)
        .map(|(_, fields)| fields.details());
    let link = ctx.frontend_url.as_deref().map(|url| {
        content::conversation_link(url, conversation.account_id, conversation.display_id)
    });
    let tail = content::description_tail(
        conversation.account_id,
        conversation.id,
        first_message.id,
        &DescriptionExtras {
            conversation_link: link.as_deref(),
            contact_details: details.as_deref(),
        },
    );
    let status = glpi_status(conversation.status);
    let priority = glpi_priority(conversation.priority);
    let marker = content::ticket_marker(conversation.account_id, conversation.id);
    // Always looked up (one search per conversation, never per message):
    // besides a retried job, a lost or rebuilt state file must not create a
    // second ticket for a conversation whose key never reached Chatwoot.
    let found = find_ticket(ctx, &marker).await?;
    // A ticket found by its marker may already have followups (a resync,
    // a rebuilt state file): match them to messages before posting any.
    let reconciled = found.is_none();
    let ticket_id = match found {
        Some(id) => id,
        None => {
            let contact_name = contact.and_then(|c| c.name.as_deref());
            let (sender, lines) = prepare(
                ctx,
                conversation.account_id,
                Some(conversation.display_id),
                first_message,
                contact_name,
            )
            .await?;
            let description =
                content::ticket_description(&rendered(first_message, &sender, &lines), &tail);
            let mut input = json!({
                "name": content::ticket_title(
                    conversation.mail_subject.as_deref(),
                    &first_message.text,
                    conversation.display_id,
                ),
                "content": description,
                "status": status,
                "priority": priority,
                "type": ctx.settings.ticket_type,
                "entities_id": ctx.settings.entity_id,
            });
            if let Some(category) = ctx.settings.category_id {
                input["itilcategories_id"] = json!(category);
            }
            if let Some(date) = content::glpi_datetime(&conversation.created_at) {
                input["date"] = json!(date);
            }
            if let Some(object) = input.as_object_mut() {
                requester.add_to_ticket_input(object);
            }
            match create_ticket(ctx, &input, &marker).await {
                // GLPI validates actor emails more strictly than Chatwoot
                // does: rather than park the conversation, create the ticket
                // without the email-only requester (the description still
                // names the contact).
                Err(JobError::Glpi(err))
                    if refused_email(&err) && matches!(requester, Requester::Email(_)) =>
                {
                    tracing::warn!(conversation = conversation.id, error = %err, "GLPI refused the requester's email; ticket created without requester");
                    if let Some(object) = input.as_object_mut() {
                        object.remove("_users_id_requester");
                        object.remove("_users_id_requester_notif");
                    }
                    requester = Requester::None;
                    create_ticket(ctx, &input, &marker).await?
                }
                other => other?,
            }
        }
    };
    let link = TicketLink {
        conversation_id: conversation.id,
        account_id: conversation.account_id,
        glpi_ticket_id: ticket_id,
        last_synced_message_id: Some(first_message.id),
        first_message_id: Some(first_message.id),
        glpi_status: Some(status),
        glpi_priority: Some(priority),
        display_id: Some(conversation.display_id),
        description_tail: Some(tail),
        reconciled,
    };
    let requester = requester_record(&requester, conversation.id, contact.map(|c| c.id));
    ctx.complete(job, move |tx| {
        mappings::record_ticket(tx, &link)?;
        mappings::record_requester(tx, &requester)?;
        enqueue_conversation_write_back(tx, link.account_id, link.conversation_id)
    })
    .await
}

/// Creates the ticket; a lost answer is resolved by looking it up.
async fn create_ticket(
    ctx: &JobContext,
    input: &serde_json::Value,
    marker: &str,
) -> Result<i64, JobError> {
    match ctx.glpi.create("Ticket", input).await {
        Ok(id) => Ok(id),
        Err(err) if err.is_unknown_outcome() => {
            find_ticket(ctx, marker).await?.ok_or(JobError::Glpi(err))
        }
        Err(err) => Err(err.into()),
    }
}

/// A ticket whose description carries `marker`.
async fn find_ticket(ctx: &JobContext, marker: &str) -> Result<Option<i64>, JobError> {
    let query = SearchQuery::new().criterion(Criterion {
        link: Link::And,
        field: TICKET_CONTENT_FIELD,
        searchtype: SearchType::Contains,
        value: marker.to_owned(),
    });
    let result = ctx.glpi.search("Ticket", &query).await?;
    Ok(result.ids().into_iter().min())
}

/// The UpdateTicket job: send status and priority when they differ from
/// what GLPI was last sent.
pub async fn update_ticket_job(
    ctx: &JobContext,
    job: &Job,
    conversation_id: i64,
    status: i32,
    priority: Option<i32>,
) -> Result<(), JobError> {
    let Some(link) = ctx.with_state(|s| mappings::ticket_link(s.conn(), conversation_id))? else {
        // No ticket yet: it will be created with the then-current state.
        return ctx.complete(job, |_| Ok(())).await;
    };
    let (status, priority) = (glpi_status(status), glpi_priority(priority));
    if link.glpi_status == Some(status) && link.glpi_priority == Some(priority) {
        return ctx.complete(job, |_| Ok(())).await;
    }
    ctx.glpi
        .update(
            "Ticket",
            link.glpi_ticket_id,
            &json!({ "status": status, "priority": priority }),
        )
        .await?;
    ctx.complete(job, move |tx| {
        mappings::record_ticket_state(tx, conversation_id, status, priority)?;
        Ok(())
    })
    .await
}

/// GLPI ticket status for a Chatwoot conversation status
/// (open=0→2 Processing, resolved=1→5 Solved, pending=2→4 Pending,
/// snoozed=3→4 Pending). Unknown values (a newer Chatwoot) map to open.
pub fn glpi_status(chatwoot_status: i32) -> i64 {
    match chatwoot_status {
        1 => 5,
        2 | 3 => 4,
        _ => 2,
    }
}

/// GLPI priority for a Chatwoot priority (low=0→2, medium=1→3, high=2→4,
/// urgent=3→5, none→3).
pub fn glpi_priority(chatwoot_priority: Option<i32>) -> i64 {
    match chatwoot_priority {
        Some(0) => 2,
        Some(2) => 4,
        Some(3) => 5,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_priority_follow_the_guide() {
        let statuses: Vec<i64> = (0..4).map(glpi_status).collect();
        assert_eq!(statuses, [2, 5, 4, 4]);
        let priorities: Vec<i64> = [Some(0), Some(1), Some(2), Some(3), None]
            .into_iter()
            .map(glpi_priority)
            .collect();
        assert_eq!(priorities, [2, 3, 4, 5, 3]);
    }
}
