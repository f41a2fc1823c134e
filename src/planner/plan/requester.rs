//! Requester rule: a conversation that moves to another contact (Chatwoot's
//! contact merge moves the mergee's conversations to the base contact; an
//! agent can move one too) gets the new contact as its ticket's requester.
//! Invariant 4: only a real `contact_id` change plans anything (the caller
//! compares it with the cache, and the bridge's own write-backs never get
//! here).

use crate::outbox::{self, keys, JobKind};

use super::super::cache::CachedConversation;
use super::{requester_snapshot, Batch, PlanError};

impl Batch<'_> {
    /// The conversation moved to another contact (a merge, or an agent
    /// moving it) after its ticket was planned: a CreateTicket no worker can
    /// have started is given the new contact; otherwise a ChangeRequester
    /// job replaces the ticket's requester, behind the conversation's other
    /// jobs.
    pub(super) fn requester_changed(
        &mut self,
        seq: i64,
        account_id: i64,
        conversation: &CachedConversation,
        previous_contact_id: Option<i64>,
    ) -> Result<(), PlanError> {
        let contact = requester_snapshot(self.conn, conversation.contact_id)?;
        let create_key = keys::create_ticket(conversation.id);
        let patched = match outbox::queued_job_id(self.conn, &create_key)? {
            Some(job_id) => {
                let here = self.enqueued.contains(&job_id);
                outbox::patch_unstarted(self.conn, job_id, here, |kind| {
                    if let JobKind::CreateTicket {
                        conversation: snapshot,
                        contact: requester,
                        ..
                    } = kind
                    {
                        snapshot.contact_id = conversation.contact_id;
                        *requester = contact.clone();
                    }
                })?
            }
            None => false,
        };
        if patched {
            self.stats.patched += 1;
            return Ok(());
        }
        let kind = JobKind::ChangeRequester {
            conversation_id: conversation.id,
            previous_contact_id,
            contact,
        };
        self.enqueue(
            account_id,
            &keys::conversation_queue(conversation.id),
            &keys::change_requester(conversation.id, seq),
            kind,
        )?;
        Ok(())
    }
}
