//! CreateTicket and UpdateTicket jobs: a conversation becomes one GLPI
//! Ticket (found again by its marker when a create is retried), and later
//! status/priority changes update it.

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
