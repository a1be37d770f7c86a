//! A program on a real terminal (tmux), for what only a terminal shows: prompts, widths.

/// A program on a real terminal: a private tmux server with one 100x30 window.
pub struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `command` (a shell command line); `EXIT=<status>` is shown when it ends.
    pub fn start(command: &str) -> Self {
        let socket = format!("custory-it-{}", custory_mcp::token::random_base62(8));
        let terminal = Self { socket };
        // The shell stays after the command so its last screen can still be read.
        let script = format!("{command}; echo EXIT=$?; sleep 60");
        terminal.tmux(&["new-session", "-d", "-x", "100", "-y", "30", &script]);
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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let screen = self.tmux(&["capture-pane", "-p"]);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}
