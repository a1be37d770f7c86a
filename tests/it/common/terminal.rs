//! A program on a real terminal (tmux), for what only a terminal shows: prompts, widths.

/// A program on a real terminal: a private tmux server with one window (100x30 unless said).
pub struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `command` (a shell command line); `EXIT=<status>` is shown when it ends.
    pub fn start(command: &str) -> Self {
        Self::start_sized(command, 100, 30)
    }

    /// [`Terminal::start`] on a terminal `columns` wide and `rows` high.
    pub fn start_sized(command: &str, columns: u16, rows: u16) -> Self {
        let socket = format!("custory-it-{}", custory_mcp::token::random_base62(8));
        let terminal = Self { socket };
        // The shell stays after the command so its last screen can still be read.
        let script = format!("{command}; echo EXIT=$?; sleep 60");
        let (x, y) = (columns.to_string(), rows.to_string());
        terminal.tmux(&["new-session", "-d", "-x", &x, "-y", &y, &script]);
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is needed for the terminal tests (apt-get install tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits (up to 20 s) until the screen shows `text`; returns the screen.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("the screen never showed {text:?}"), |screen| {
            screen.contains(text)
        })
    }

    /// Waits (up to 20 s) until `ready` holds for the screen; returns the screen.
    pub fn wait_until(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        self.wait_within(std::time::Duration::from_secs(20), &ready)
            .unwrap_or_else(|screen| panic!("{what}:\n{screen}"))
    }

    /// The screen once `ready` holds for it, or the last one seen after `limit`.
    pub fn wait_within(
        &self,
        limit: std::time::Duration,
        ready: &dyn Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return Ok(screen);
            }
            if std::time::Instant::now() >= deadline {
                return Err(screen);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// What the window shows now, a line per row (the rows below the last text are left out).
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"]).trim_end().to_owned()
    }

    /// Whether the cursor is visible (a picker hides it while it is drawn).
    pub fn cursor_visible(&self) -> bool {
        self.tmux(&["display-message", "-p", "#{cursor_flag}"]).trim() == "1"
    }

    /// Keys by tmux's names (`Enter`, `Down`, `C-c`, `Tab`), or `-l TEXT` for text.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// `text` typed as it is.
    pub fn type_text(&self, text: &str) {
        self.keys(&["-l", text]);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}
