//! `build` and `builder prune`.

use super::Ctx;
use crate::cli::{BuildArgs, BuilderPruneArgs};
use crate::client::CliError;

pub async fn build(_ctx: &Ctx, _args: BuildArgs) -> Result<(), CliError> {
    Err(CliError::Other("build: not implemented yet".into()))
}

pub async fn prune(_ctx: &Ctx, _args: BuilderPruneArgs) -> Result<(), CliError> {
    Err(CliError::Other("builder prune: not implemented yet".into()))
}
