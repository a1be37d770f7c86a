//! Every prompt in one place. Prompts appear only when stdin, stdout and stderr are all
//! terminals (`TOKEN=$(custory-mcp keys create …)` is never asked anything); every prompt has a
//! flag, and without a terminal a missing value is an error naming that flag.
//!
//! A prompt fits the terminal: its question and each entry of a picker are cut to the width
//! (a line that wrapped would be drawn again, not replaced, at each key). Ctrl-C at a prompt
//! puts the terminal back as it was (the cursor a picker hides, the echo a password turns
//! off), says "cancelled" and exits 130, as a shell reports a program stopped by Ctrl-C.

use std::fmt;
use std::io::IsTerminal as _;
use std::sync::{Once, OnceLock};

use dialoguer::console::Term;
use dialoguer::theme::{ColorfulTheme, Theme};
use dialoguer::{Confirm, Input, Password, Select};

use crate::error::CliError;
use crate::output;

pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
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
    catch_ctrl_c();
    let answer = Input::<String>::with_theme(&Fitted::default())
        .with_prompt(prompt)
        .validate_with(|value: &String| validate(value))
        .interact_text_on(&Term::stderr());
    Ok(answered(answer)?)
}

pub fn select(prompt: &str, items: &[String], default: usize) -> anyhow::Result<usize> {
    catch_ctrl_c();
    let answer = Select::with_theme(&Fitted::default())
        .with_prompt(crate::api::displayable(prompt))
        .items(items.iter().map(|item| crate::api::displayable(item)))
        .default(default)
        .interact_on(&Term::stderr());
    Ok(answered(answer)?)
}

pub fn confirm(prompt: &str) -> anyhow::Result<bool> {
    catch_ctrl_c();
    let answer = Confirm::with_theme(&Fitted::default())
        .with_prompt(crate::api::displayable(prompt))
        .default(false)
        .interact_on(&Term::stderr());
    Ok(answered(answer)?)
}

pub fn password(prompt: &str) -> anyhow::Result<String> {
    catch_ctrl_c();
    let answer =
        Password::with_theme(&Fitted::default()).with_prompt(prompt).interact_on(&Term::stderr());
    Ok(answered(answer)?)
}

/// A picker's entry: `first` (a name) cut so that `rest` (a prefix, a date) still shows.
pub fn entry(first: &str, rest: &str) -> String {
    fit_first(first, rest, ITEM_MARKER)
}

/// A yes/no question about `first` (a name), cut so that `rest` (its prefix) still shows.
pub fn question(first: &str, rest: &str) -> String {
    fit_first(first, rest, CONFIRM_DECORATION)
}

fn fit_first(first: &str, rest: &str, reserved: usize) -> String {
    match columns() {
        Some(columns) => {
            let room = columns.saturating_sub(reserved + 1 + output::width_of(rest)).max(12);
            format!("{}{rest}", output::shorten(first, room))
        }
        None => format!("{first}{rest}"),
    }
}

/// Asks to go ahead with a destructive action, unless `--yes` was given. `note` (what it will
/// do) is a line of its own above the question, so the question stays short.
pub fn confirm_or_yes(yes: bool, question: &str, note: Option<&str>) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        return Err(CliError::usage("this needs confirmation, and there is no terminal to ask on")
            .hint("pass --yes to go ahead without asking")
            .into());
    }
    if let Some(note) = note {
        output::note(note);
    }
    if confirm(question)? {
        Ok(())
    } else {
        Err(CliError::failure("cancelled; nothing was changed").into())
    }
}

/// The terminal's width, when stderr (where prompts are drawn) is one.
fn columns() -> Option<usize> {
    Term::stderr().size_checked().map(|(_, columns)| usize::from(columns))
}

/// What the theme draws before a picker's entry (`❯ `).
const ITEM_MARKER: usize = 2;
/// What it draws around a yes/no question (`? ` and ` (y/n) › no`).
const CONFIRM_DECORATION: usize = 14;
/// What a picker adds after its question when it pages (` [Page 1/2]`).
const PAGING_INFO: usize = 14;

/// dialoguer's colorful theme, with every line it draws cut to the terminal's width: dialoguer
/// redraws a prompt by clearing the lines it counted, so a line the terminal wrapped would stay
/// on screen, copied at each key.
#[derive(Default)]
struct Fitted(ColorfulTheme);

impl Fitted {
    /// What `draw` writes, cut to the width less `reserved` columns (one more is left free, so
    /// a line never ends on the last column).
    fn cut(
        f: &mut dyn fmt::Write,
        reserved: usize,
        draw: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result,
    ) -> fmt::Result {
        let mut line = String::new();
        draw(&mut line)?;
        match columns() {
            Some(columns) => {
                f.write_str(&output::shorten(&line, columns.saturating_sub(reserved + 1)))
            }
            None => f.write_str(&line),
        }
    }
}

impl Theme for Fitted {
    fn format_prompt(&self, f: &mut dyn fmt::Write, prompt: &str) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_prompt(line, prompt))
    }

    fn format_error(&self, f: &mut dyn fmt::Write, err: &str) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_error(line, err))
    }

    fn format_confirm_prompt(
        &self,
        f: &mut dyn fmt::Write,
        prompt: &str,
        default: Option<bool>,
    ) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_confirm_prompt(line, prompt, default))
    }

    fn format_confirm_prompt_selection(
        &self,
        f: &mut dyn fmt::Write,
        prompt: &str,
        selection: Option<bool>,
    ) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_confirm_prompt_selection(line, prompt, selection))
    }

    fn format_input_prompt(
        &self,
        f: &mut dyn fmt::Write,
        prompt: &str,
        default: Option<&str>,
    ) -> fmt::Result {
        // Half the line is left for the answer typed after it.
        let reserved = columns().map_or(0, |columns| columns / 2);
        Self::cut(f, reserved, |line| self.0.format_input_prompt(line, prompt, default))
    }

    fn format_input_prompt_selection(
        &self,
        f: &mut dyn fmt::Write,
        prompt: &str,
        sel: &str,
    ) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_input_prompt_selection(line, prompt, sel))
    }

    fn format_password_prompt(&self, f: &mut dyn fmt::Write, prompt: &str) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_password_prompt(line, prompt))
    }

    fn format_password_prompt_selection(
        &self,
        f: &mut dyn fmt::Write,
        prompt: &str,
    ) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_password_prompt_selection(line, prompt))
    }

    fn format_select_prompt(&self, f: &mut dyn fmt::Write, prompt: &str) -> fmt::Result {
        Self::cut(f, PAGING_INFO, |line| self.0.format_select_prompt(line, prompt))
    }

    fn format_select_prompt_selection(
        &self,
        f: &mut dyn fmt::Write,
        prompt: &str,
        sel: &str,
    ) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_select_prompt_selection(line, prompt, sel))
    }

    fn format_select_prompt_item(
        &self,
        f: &mut dyn fmt::Write,
        text: &str,
        active: bool,
    ) -> fmt::Result {
        Self::cut(f, 0, |line| self.0.format_select_prompt_item(line, text, active))
    }
}

/// A prompt's answer; Ctrl-C (which a picker reads as a key, then raises) cancels.
fn answered<T>(answer: dialoguer::Result<T>) -> std::io::Result<T> {
    match answer {
        Ok(answer) => Ok(answer),
        Err(dialoguer::Error::IO(error)) if error.kind() == std::io::ErrorKind::Interrupted => {
            cancel()
        }
        Err(dialoguer::Error::IO(error)) => Err(error),
    }
}

/// The terminal's mode before the first prompt, to put back on Ctrl-C.
#[cfg(unix)]
static SAVED_MODE: OnceLock<Option<rustix::termios::Termios>> = OnceLock::new();

/// From the first prompt on, Ctrl-C cancels (see [`cancel`]) instead of killing the process
/// with the terminal in a prompt's state.
fn catch_ctrl_c() {
    static CAUGHT: Once = Once::new();
    CAUGHT.call_once(|| {
        #[cfg(unix)]
        {
            let _ = SAVED_MODE.set(rustix::termios::tcgetattr(std::io::stdin()).ok());
        }
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        // The handler is in place when this returns, before the prompt is drawn.
        let interrupted = {
            let _inside = runtime.enter();
            ctrl_c()
        };
        let Ok(interrupted) = interrupted else { return };
        std::thread::spawn(move || {
            runtime.block_on(interrupted);
            cancel();
        });
    });
}

#[cfg(unix)]
fn ctrl_c() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        interrupt.recv().await;
    })
}

#[cfg(not(unix))]
fn ctrl_c() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Ctrl-C: the terminal as it was, "cancelled", exit 130. Whichever of the signal's thread and
/// the prompt's comes first does it; the other waits for the exit.
fn cancel() -> ! {
    static CANCELLED: Once = Once::new();
    CANCELLED.call_once(|| {
        #[cfg(unix)]
        if let Some(Some(mode)) = SAVED_MODE.get() {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                mode,
            );
        }
        let _ = Term::stderr().show_cursor();
        output::cancelled();
        std::process::exit(130);
    });
    loop {
        std::thread::park();
    }
}
