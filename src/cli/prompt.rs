//! Every prompt in one place. Prompts appear only when stdin and stderr are terminals; every
//! prompt has a flag, and without a terminal a missing value is an error naming that flag.

use std::io::IsTerminal as _;

use dialoguer::console::Term;
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

use crate::error::CliError;

pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The error for a value that is missing and cannot be asked for.
pub fn missing(what: &str, flag: &str) -> anyhow::Error {
    CliError::usage(format!("{what} is required when not running on a terminal"))
        .hint(format!("pass {flag}"))
        .into()
}

pub fn text(
    prompt: &str,
    validate: impl Fn(&String) -> Result<(), String>,
) -> anyhow::Result<String> {
    Ok(Input::<String>::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .validate_with(|value: &String| validate(value))
        .interact_text_on(&Term::stderr())?)
}

pub fn select(prompt: &str, items: &[String], default: usize) -> anyhow::Result<usize> {
    Ok(Select::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .items(items)
        .default(default)
        .interact_on(&Term::stderr())?)
}

pub fn confirm(prompt: &str) -> anyhow::Result<bool> {
    Ok(Confirm::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .default(false)
        .interact_on(&Term::stderr())?)
}

pub fn password(prompt: &str) -> anyhow::Result<String> {
    Ok(Password::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .interact_on(&Term::stderr())?)
}

/// Asks to go ahead with a destructive action, unless `--yes` was given.
pub fn confirm_or_yes(yes: bool, prompt: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        return Err(CliError::usage("this needs confirmation, and there is no terminal to ask on")
            .hint("pass --yes to go ahead without asking")
            .into());
    }
    if confirm(prompt)? {
        Ok(())
    } else {
        Err(CliError::failure("cancelled; nothing was changed").into())
    }
}
