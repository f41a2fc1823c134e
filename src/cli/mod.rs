//! The command line: one file per subcommand.

pub mod check;
pub mod context;
pub mod demo;
pub mod glpi_sandbox;
pub mod parked;
pub mod resync;
pub mod run;
pub mod setup_sql;
pub mod status;
