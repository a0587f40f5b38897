//! `herald completions SHELL`: the shell's completion script for every `herald` command.

use clap::{Args, CommandFactory};

use super::http::Result;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    shell: clap_complete::Shell,
}

pub fn run(a: CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut crate::Cli::command(), "herald", &mut script);
    super::output::emit(&String::from_utf8_lossy(&script));
    Ok(())
}
