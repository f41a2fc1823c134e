//! SyncContact jobs, and "ensure the contact has a GLPI record" for tickets:
//! a Chatwoot contact becomes one GLPI User (user mode) or Contact (contact
//! mode). Before creating, GLPI is searched by email, then phone (then
//! login, users only) and an existing record is linked instead of
//! duplicated; that same lookup resolves a create whose outcome was lost.
//!
//! A per-contact async lock makes the check-lookup-create sequence atomic
//! per contact, so two conversations of one contact starting at once never
//! create two GLPI users (the outbox orders jobs per queue, and a contact's
//! sync job and a ticket job of its conversation are in different queues).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::job::{enqueue_contact_write_back, JobContext, JobError};
use super::person::{self, PersonFields};
use crate::glpi::{GlpiError, SearchQuery};
use crate::outbox::{ContactSnapshot, Job};
use crate::state::mappings::{self, ContactLink, GlpiPersonType};

/// The reason a contact without name, email and phone is parked with.
pub const NOT_IDENTIFIABLE: &str =
    "Contact not identifiable: it has no name, email or phone number";

/// Search option ids (GLPI 10.0/11 `rawSearchOptions`).
mod field {
    pub const USER_LOGIN: u32 = 1;
    pub const USER_EMAIL: u32 = 5;
    pub const USER_PHONE: u32 = 6;
    pub const CONTACT_EMAIL: u32 = 6;
    pub const CONTACT_PHONE: u32 = 3;
}

/// One async lock per contact id.
#[derive(Default)]
pub struct ContactLocks {
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl ContactLocks {
    pub async fn lock(&self, contact_id: i64) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget locks nobody holds, so the map stays small.
            if locks.len() > 4096 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry(contact_id).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// The GLPI fields of a contact snapshot under this account's settings;
/// `None` when the contact is not identifiable.
pub fn fields_of(ctx: &JobContext, contact: &ContactSnapshot) -> Option<PersonFields> {
    let (name, email, phone) = (
        contact.name.as_deref(),
        contact.email.as_deref(),
        contact.phone_number.as_deref(),
    );
    person::identifiable(name, email, phone).then(|| {
        person::person_fields(
            contact.account_id,
            contact.id,
            name,
            email,
            phone,
            ctx.settings.entity_id,
        )
    })
}

/// The SyncContact job: create or update the contact's GLPI record.
pub async fn sync_contact_job(
    ctx: &JobContext,
    job: &Job,
    contact: &ContactSnapshot,
) -> Result<(), JobError> {
    let Some(fields) = fields_of(ctx, contact) else {
        return Err(JobError::Park(NOT_IDENTIFIABLE.to_owned()));
    };
    let _guard = ctx.contact_locks.lock(contact.id).await;
    let person_type = ctx.settings.person_type;
    let link = ctx.with_state(|s| mappings::contact_link(s.conn(), contact.id))?;
    let synced = serde_json::to_string(&fields).expect("fields serialize");
    match link.filter(|l| l.person_type == person_type) {
        Some(link) if link.synced_fields.as_deref() == Some(synced.as_str()) => {
            // Nothing GLPI shows changed (invariant 4).
            ctx.complete(job, |_| Ok(())).await
        }
        Some(link) => {
            ctx.glpi
                .update(
                    person_type.itemtype(),
                    link.glpi_id,
                    &update_input(&fields, &link),
                )
                .await?;
            complete_link(ctx, job, contact, link.glpi_id, synced, false).await
        }
        None => {
            let glpi_id = find_or_create(ctx, &fields).await?;
            complete_link(ctx, job, contact, glpi_id, synced, true).await
        }
    }
}

/// The PUT input that brings a linked GLPI record to `fields` (a user's
/// email is added only when it differs from the one last sent).
pub(super) fn update_input(fields: &PersonFields, link: &ContactLink) -> serde_json::Value {
    let previous: Option<PersonFields> = link
        .synced_fields
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    match link.person_type {
        GlpiPersonType::User => fields.user_update_input(previous.as_ref()),
        GlpiPersonType::Contact => fields.contact_input(),
    }
}

/// Completes a contact job: records the GLPI record and the fields sent
/// (with the job, invariant 2), and queues the write-back when the id is
/// new to Chatwoot.
pub(super) async fn complete_link(
    ctx: &JobContext,
    job: &Job,
    contact: &ContactSnapshot,
    glpi_id: i64,
    synced_fields: String,
    write_back: bool,
) -> Result<(), JobError> {
    let person_type = ctx.settings.person_type;
    let (contact_id, account_id) = (contact.id, contact.account_id);
    ctx.complete(job, move |tx| {
        mappings::record_contact(
            tx,
            contact_id,
            account_id,
            person_type,
            glpi_id,
            Some(&synced_fields),
        )?;
        if write_back {
            enqueue_contact_write_back(tx, account_id, contact_id)?;
        }
        Ok(())
    })
    .await
}

/// The contact's GLPI record for the current sync type, syncing it first if
/// it has none (used by CreateTicket). `None` when the contact is not
/// identifiable (the ticket then has no requester).
pub async fn ensure_contact(
    ctx: &JobContext,
    contact: &ContactSnapshot,
) -> Result<Option<(ContactLink, PersonFields)>, JobError> {
    let Some(fields) = fields_of(ctx, contact) else {
        return Ok(None);
    };
    let _guard = ctx.contact_locks.lock(contact.id).await;
    let person_type = ctx.settings.person_type;
    let link = ctx.with_state(|s| mappings::contact_link(s.conn(), contact.id))?;
    if let Some(link) = link.filter(|l| l.person_type == person_type) {
        return Ok(Some((link, fields)));
    }
    let glpi_id = find_or_create(ctx, &fields).await?;
    let synced = serde_json::to_string(&fields).expect("fields serialize");
    ctx.with_state(|s| -> Result<(), JobError> {
        let tx = crate::state::write_transaction(s.conn_mut())?;
        mappings::record_contact(
            &tx,
            contact.id,
            contact.account_id,
            person_type,
            glpi_id,
            Some(&synced),
        )?;
        enqueue_contact_write_back(&tx, contact.account_id, contact.id)?;
        tx.commit()?;
        Ok(())
    })?;
    let link = ContactLink {
        contact_id: contact.id,
        account_id: contact.account_id,
        person_type,
        glpi_id,
        synced_fields: Some(synced),
    };
    Ok(Some((link, fields)))
}

/// Links an existing GLPI record (same email, phone or login) or creates
/// one. A create whose answer was lost, or that GLPI refuses because the
/// login exists (e.g. in the trash), is resolved by looking up again.
pub(super) async fn find_or_create(
    ctx: &JobContext,
    fields: &PersonFields,
) -> Result<i64, JobError> {
    let person_type = ctx.settings.person_type;
    if let Some(id) = find_existing(ctx, fields, false).await? {
        return Ok(id);
    }
    let input = match person_type {
        GlpiPersonType::User => fields.user_create_input(),
        GlpiPersonType::Contact => fields.contact_input(),
    };
    match ctx.glpi.create(person_type.itemtype(), &input).await {
        Ok(id) => Ok(id),
        Err(err) if err.is_unknown_outcome() || user_exists(&err) => {
            let again = find_existing(ctx, fields, user_exists(&err)).await?;
            again.ok_or(JobError::Glpi(err))
        }
        Err(err) => Err(err.into()),
    }
}

fn user_exists(err: &GlpiError) -> bool {
    err.constant() == Some("ERROR_GLPI_ADD")
        && err.message().is_some_and(|m| m.contains("already exists"))
}

/// Searches by email, then phone, then (users) login; the trash too when
/// asked (a trashed user still owns its login).
async fn find_existing(
    ctx: &JobContext,
    fields: &PersonFields,
    include_trash: bool,
) -> Result<Option<i64>, JobError> {
    let person_type = ctx.settings.person_type;
    let mut probes: Vec<(u32, &str)> = Vec::new();
    let (email_field, phone_field) = match person_type {
        GlpiPersonType::User => (field::USER_EMAIL, field::USER_PHONE),
        GlpiPersonType::Contact => (field::CONTACT_EMAIL, field::CONTACT_PHONE),
    };
    if let Some(email) = &fields.email {
        probes.push((email_field, email));
    }
    if let Some(phone) = &fields.phone {
        probes.push((phone_field, phone));
    }
    if person_type == GlpiPersonType::User {
        probes.push((field::USER_LOGIN, &fields.login));
    }
    for trashed in [false, true] {
        if trashed && !include_trash {
            break;
        }
        for (field, value) in &probes {
            let query = SearchQuery::new().exact(*field, value).trashed(trashed);
            let result = ctx.glpi.search(person_type.itemtype(), &query).await?;
            let exact = result
                .rows
                .iter()
                .filter(|row| row.has_text(*field, value))
                .find_map(|row| row.id());
            if let Some(id) = exact.or_else(|| result.ids().first().copied()) {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}
