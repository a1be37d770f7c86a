//! Security: malformed input of every kind, workspace isolation, secrets nowhere.
