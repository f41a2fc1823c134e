//! The `setup-sql` subcommand: prints the SQL a DBA runs (as a superuser)
//! instead of giving the bridge a superuser: a least-privilege role and the
//! publication.

use crate::replication::setup::{self, check_identifier, ReplicationNames, SetupSqlOptions};
use crate::replication::SourceDb;
use crate::secret::Secret;

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The role to create for the bridge.
    #[arg(long, env = "BRIDGE_ROLE", default_value = setup::DEFAULT_NAME)]
    pub role: String,

    /// Its password (otherwise the SQL says how to set one).
    #[arg(long, env = "BRIDGE_ROLE_PASSWORD", hide_env_values = true, value_parser = parse_secret)]
    pub role_password: Option<Secret>,

    /// Chatwoot's database name, for GRANT CONNECT (default: from DATABASE_URL, if set).
    #[arg(long)]
    pub database: Option<String>,

    /// Name of the logical replication slot.
    #[arg(long, env = "BRIDGE_SLOT", default_value = setup::DEFAULT_NAME)]
    pub slot: String,

    /// Name of the publication.
    #[arg(long, env = "BRIDGE_PUBLICATION", default_value = setup::DEFAULT_NAME)]
    pub publication: String,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let names = ReplicationNames::validated(&args.slot, &args.publication)?;
    check_identifier("role", &args.role)?;
    let database = args.database.or_else(|| {
        let url = std::env::var("DATABASE_URL").ok()?;
        SourceDb::from_url(&Secret::new(url))
            .ok()
            .map(|db| db.database().to_owned())
    });
    print!(
        "{}",
        setup::setup_sql(&SetupSqlOptions {
            names,
            role: args.role,
            role_password: args.role_password,
            database,
        })
    );
    Ok(())
}
