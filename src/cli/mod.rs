//! The command line: one file per subcommand.

pub mod glpi_sandbox;
pub mod logging;
pub mod run;
pub mod setup_sql;
