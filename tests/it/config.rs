//! `config` and `completions` as a user runs them.
