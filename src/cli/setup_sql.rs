//! The `setup-sql` subcommand.

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn execute(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
