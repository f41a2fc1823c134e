//! The planner: turns committed Chatwoot changes into GLPI jobs, per account
//! settings, skipping changes that do not alter what GLPI shows (invariant 4).

pub mod settings;
