//! CreateFollowup and UpdateFollowup jobs: each later message of a
//! conversation becomes one ITILFollowup of its ticket, in order; a late
//! attachment or a deletion re-renders it (or the ticket description, for
//! the first message).
//!
//! Steady state costs exactly one GLPI request per message (the POST). Only
//! a job that may have run before (a retry, or a run cut by a crash:
//! [`Job::may_have_run`]) first lists the ticket's followups to find
//! one an interrupted attempt created, by its `[cwgb-m<id>]` marker.

use serde_json::json;

use super::content::{self, RenderedMessage, Sender};
use super::job::{enqueue_conversation_write_back, JobContext, JobError};
use crate::outbox::{AttachmentSnapshot, Job, MessageSnapshot};
use crate::state::mappings::{self, GlpiPersonType, TicketLink};

/// Chatwoot's `message_type` of messages written by the contact.
const INCOMING: i32 = 0;

/// The reason a followup waits when its conversation has no ticket.
pub const NO_TICKET: &str =
    "the conversation has no GLPI ticket yet (its ticket job was parked or dropped); retry it after the ticket";

/// One line per attachment: `external_url` when set, else the conversation
/// link (Chatwoot's signed blob URLs are not built, see the README), else a
/// note naming the attachment.
pub fn attachment_lines(
    frontend_url: Option<&str>,
    account_id: i64,
    display_id: Option<i64>,
    attachments: &[AttachmentSnapshot],
) -> Vec<String> {
    let link = frontend_url
        .zip(display_id)
        .map(|(url, display_id)| content::conversation_link(url, account_id, display_id));
    attachments
        .iter()
        .map(|a| {
            if let Some(url) = a
                .external_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
            {
                return url.to_owned();
            }
            let label = a
                .fallback_title
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{} #{}", file_type_name(a.file_type), a.id));
            match &link {
                Some(link) => format!("{label}: {link}"),
                None => format!("{label} (stored in Chatwoot)"),
            }
        })
        .collect()
}

fn file_type_name(file_type: i32) -> &'static str {
    match file_type {
        0 => "image",
        1 => "audio",
        2 => "video",
        4 => "location",
        _ => "file",
    }
}

/// The sender and attachment lines of a message, ready for rendering.
pub async fn prepare(
    ctx: &JobContext,
    account_id: i64,
    display_id: Option<i64>,
    message: &MessageSnapshot,
    contact_name: Option<&str>,
) -> Result<(Sender, Vec<String>), JobError> {
    let sender = ctx
        .senders
        .sender(
            message.sender_type.as_deref(),
            message.sender_id,
            message.message_type == INCOMING,
            contact_name,
        )
        .await?;
    let lines = attachment_lines(
        ctx.frontend_url.as_deref(),
        account_id,
        display_id,
        &message.attachments,
    );
    Ok((sender, lines))
}

/// A message's rendering inputs, borrowed.
pub fn rendered<'a>(
    message: &'a MessageSnapshot,
    sender: &'a Sender,
    attachments: &'a [String],
) -> RenderedMessage<'a> {
    RenderedMessage {
        message_id: message.id,
        created_at: &message.created_at,
        sender,
        text: &message.text,
        deleted: message.deleted,
        attachments,
    }
}

/// The ticket of a conversation (reconciled), or park: a followup needs it.
async fn ticket_of(ctx: &JobContext, conversation_id: i64) -> Result<TicketLink, JobError> {
    let ticket = ctx
        .with_state(|s| mappings::ticket_link(s.conn(), conversation_id))?
        .ok_or_else(|| JobError::Park(NO_TICKET.to_owned()))?;
    if ticket.reconciled {
        return Ok(ticket);
    }
    reconcile(ctx, &ticket).await?;
    Ok(TicketLink {
        reconciled: true,
        ..ticket
    })
}

/// The followup's author: the contact's GLPI user for incoming messages in
/// user mode, else the configured default user, else GLPI's API user.
fn author(ctx: &JobContext, message: &MessageSnapshot) -> Result<Option<i64>, JobError> {
    if ctx.settings.person_type == GlpiPersonType::User
        && message.message_type == INCOMING
        && message.sender_type.as_deref() == Some("Contact")
    {
        if let Some(contact_id) = message.sender_id {
            let link = ctx.with_state(|s| mappings::contact_link(s.conn(), contact_id))?;
            if let Some(link) = link.filter(|l| l.person_type == GlpiPersonType::User) {
                return Ok(Some(link.glpi_id));
            }
        }
    }
    Ok(ctx.settings.default_user_id)
}

/// The ticket's followups in GLPI, as (message id, followup id) pairs read
/// from their markers.
pub(super) async fn followups_by_message(
    ctx: &JobContext,
    ticket_id: i64,
) -> Result<Vec<(i64, i64)>, JobError> {
    let followups = ctx
        .glpi
        .list_sub_items("Ticket", ticket_id, "ITILFollowup")
        .await?;
    Ok(followups
        .iter()
        .filter_map(|f| {
            let text = f.get("content").and_then(|c| c.as_str())?;
            let followup_id = f.get("id").and_then(|id| id.as_i64())?;
            Some((content::parse_message_marker(text)?, followup_id))
        })
        .collect())
}

/// Finds the followup an earlier attempt created, by its marker.
async fn find_followup(
    ctx: &JobContext,
    ticket_id: i64,
    message_id: i64,
) -> Result<Option<i64>, JobError> {
    Ok(followups_by_message(ctx, ticket_id)
        .await?
        .into_iter()
        .find(|(m, _)| *m == message_id)
        .map(|(_, f)| f))
}

/// A ticket adopted from Chatwoot's keys (local state lost or rebuilt):
/// records the followups GLPI already has, once, so none is posted twice.
async fn reconcile(ctx: &JobContext, ticket: &TicketLink) -> Result<(), JobError> {
    let found = followups_by_message(ctx, ticket.glpi_ticket_id).await?;
    ctx.with_state(|s| -> Result<(), JobError> {
        let tx = crate::state::write_transaction(s.conn_mut())?;
        for (message_id, followup_id) in &found {
            mappings::record_followup(&tx, *message_id, ticket.conversation_id, *followup_id)?;
        }
        mappings::mark_reconciled(&tx, ticket.conversation_id)?;
        tx.commit()?;
        Ok(())
    })
}

/// The CreateFollowup job.
pub async fn create_followup_job(
    ctx: &JobContext,
    job: &Job,
    conversation_id: i64,
    message: &MessageSnapshot,
) -> Result<(), JobError> {
    let ticket = ticket_of(ctx, conversation_id).await?;
    let done = ctx.with_state(|s| mappings::followup_link(s.conn(), message.id))?;
    if done.is_some() || ticket.first_message_id == Some(message.id) {
        // Already posted, or this message is the ticket's description.
        return ctx.complete(job, |_| Ok(())).await;
    }
    let followup_id = post_followup(ctx, job, &ticket, message).await?;
    record_posted(ctx, job, conversation_id, message.id, followup_id).await
}

/// Completes a job that posted `followup_id` for `message_id`.
async fn record_posted(
    ctx: &JobContext,
    job: &Job,
    conversation_id: i64,
    message_id: i64,
    followup_id: i64,
) -> Result<(), JobError> {
    let account_id = job.account_id;
    ctx.complete(job, move |tx| {
        mappings::record_followup(tx, message_id, conversation_id, followup_id)?;
        enqueue_conversation_write_back(tx, account_id, conversation_id)
    })
    .await
}

async fn post_followup(
    ctx: &JobContext,
    job: &Job,
    ticket: &TicketLink,
    message: &MessageSnapshot,
) -> Result<i64, JobError> {
    if job.may_have_run() {
        if let Some(id) = find_followup(ctx, ticket.glpi_ticket_id, message.id).await? {
            return Ok(id);
        }
    }
    let (sender, lines) = prepare(ctx, job.account_id, ticket.display_id, message, None).await?;
    let body = content::followup_content(&rendered(message, &sender, &lines));
    let mut input = json!({
        "itemtype": "Ticket",
        "items_id": ticket.glpi_ticket_id,
        "content": body,
        "is_private": i32::from(message.private),
    });
    if let Some(date) = content::glpi_datetime(&message.created_at) {
        input["date"] = json!(date);
    }
    if let Some(user) = author(ctx, message)? {
        input["users_id"] = json!(user);
    }
    Ok(ctx.glpi.create("ITILFollowup", &input).await?)
}

/// The UpdateFollowup job: re-render after a late attachment or a deletion.
pub async fn update_followup_job(
    ctx: &JobContext,
    job: &Job,
    conversation_id: i64,
    message: &MessageSnapshot,
) -> Result<(), JobError> {
    let ticket = ticket_of(ctx, conversation_id).await?;
    if ticket.first_message_id == Some(message.id) {
        let (sender, lines) =
            prepare(ctx, job.account_id, ticket.display_id, message, None).await?;
        let tail = ticket.description_tail.clone().unwrap_or_else(|| {
            content::description_tail(
                job.account_id,
                conversation_id,
                message.id,
                &content::DescriptionExtras::default(),
            )
        });
        let description = content::ticket_description(&rendered(message, &sender, &lines), &tail);
        ctx.glpi
            .update(
                "Ticket",
                ticket.glpi_ticket_id,
                &json!({ "content": description }),
            )
            .await?;
        return ctx.complete(job, |_| Ok(())).await;
    }
    let link = ctx.with_state(|s| mappings::followup_link(s.conn(), message.id))?;
    let Some(link) = link else {
        // Never posted (e.g. the create was dropped by the operator): post
        // it now, rendered as it is today.
        let followup_id = post_followup(ctx, job, &ticket, message).await?;
        return record_posted(ctx, job, conversation_id, message.id, followup_id).await;
    };
    let (sender, lines) = prepare(ctx, job.account_id, ticket.display_id, message, None).await?;
    let body = content::followup_content(&rendered(message, &sender, &lines));
    ctx.glpi
        .update(
            "ITILFollowup",
            link.glpi_followup_id,
            &json!({ "content": body }),
        )
        .await?;
    ctx.complete(job, |_| Ok(())).await
}
