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

    /// Slot and publication names (and DATABASE_URL, for the database
    /// name): the same settings `run` reads.
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let config = crate::config::Config::load(&args.config)?;
    let names = ReplicationNames::validated(&config.slot_name, &config.publication_name)?;
    check_identifier("role", &args.role)?;
    let database = args.database.or_else(|| {
        let url = config.database_url.as_ref()?;
        SourceDb::from_url(&Secret::new(url.expose()))
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
