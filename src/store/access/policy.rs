//! The workspace's key policy (issue 34): the rules every key made there keeps, who changed
//! them, the keys a newer rule blocks, and the revocation of keys left unused.
//!
//! Every authenticated MCP request asks whether its key breaks its workspace's policy, so the
//! policy is kept in memory. With SQLite (one process owns the database) the copy is replaced in
//! the same call that writes a change, and never read again. With PostgreSQL (replicas) a copy
//! is trusted for [`SHARED_TTL`]: a change made through another replica counts there within
//! that time, at the cost of one primary-key read per workspace in use per replica and period.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{AccessStore, KeyIdentity, NewEvent};
use crate::api::{
    Author, AuthorKind, Breach, EventKind, Key, KeyFlag, KeyStatus, Policy, PolicyChange,
    PolicyRule,
};
use crate::store::db::{Connection, OptionalExtension as _, params};
use crate::store::{StoreError, StoreResult, from_secs};

/// How long a replica trusts its copy of a policy (PostgreSQL).
pub const SHARED_TTL: Duration = Duration::from_secs(5);

/// Keys blocked by one policy revision that are recorded (`key.blocked`) at most: past it, a
/// workspace full of blocked keys is still refused, without an event for each.
const NOTED_MAX: usize = 10_000;

/// Keys the housekeeping revokes per workspace and run at most (the next run goes on).
const REVOKED_PER_RUN: i64 = 500;

/// A workspace's policy as read, with the keys already recorded as blocked by it.
#[derive(Debug)]
pub struct StoredPolicy {
    pub policy: Policy,
    /// 0 for a workspace that never had one; one more at each change.
    pub revision: i64,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Author>,
    read_at: Instant,
    /// `(key id, rule)` pairs recorded as blocked under this revision.
    noted: Arc<Mutex<HashSet<(String, PolicyRule)>>>,
}

impl StoredPolicy {
    /// The first rule the key breaks, if any.
    pub fn breach(&self, key: &KeyIdentity) -> Option<Breach> {
        self.policy.check(key.expires, key.access, &key.scopes).err()
    }

    /// Whether there is nothing to record for `key` breaking `rule`: recorded under this
    /// revision already, or the bound reached. Asked before a blocked request is given a
    /// task to record it, so a blocked key's flood costs a lookup, not a task per request.
    pub fn noted(&self, key: &KeyIdentity, rule: PolicyRule) -> bool {
        let noted = self.noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        noted.len() >= NOTED_MAX || noted.contains(&(key.key_id.clone(), rule))
    }
}

/// The policies in memory, by workspace id.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    by_workspace: RwLock<HashMap<i64, Arc<StoredPolicy>>>,
}

impl Policies {
    fn get(&self, ws: i64) -> Option<Arc<StoredPolicy>> {
        // The map holds plain values, a panic cannot leave it torn.
        self.by_workspace
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&ws)
            .cloned()
    }

    /// Keeps `policy` for `ws` unless memory already holds a later revision (a read that
    /// raced a change must not put the older rules back), and returns what is kept.
    fn put(&self, ws: i64, policy: Arc<StoredPolicy>) -> Arc<StoredPolicy> {
        let mut map = self.by_workspace.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&ws) {
            Some(kept) if kept.revision > policy.revision => Arc::clone(kept),
            _ => {
                map.insert(ws, Arc::clone(&policy));
                policy
            }
        }
    }
}

/// The policy of `ws` if memory holds a copy still trusted (no query).
pub(super) fn cached_policy(s: &AccessStore<'_>, ws: i64) -> Option<Arc<StoredPolicy>> {
    let found = s.state.policies.get(ws)?;
    (s.keys_in_memory() || found.read_at.elapsed() < SHARED_TTL).then_some(found)
}

/// The policy of `ws`: from memory, else read (and kept).
pub(super) fn policy(s: &AccessStore<'_>, ws: i64) -> StoreResult<Arc<StoredPolicy>> {
    match cached_policy(s, ws) {
        Some(found) => Ok(found),
        None => fresh_policy(s, ws),
    }
}

/// The policy of `ws` as the database holds it now (and kept): what a change is made from,
/// so a change made through another replica in the last [`SHARED_TTL`] is not undone.
pub(super) fn fresh_policy(s: &AccessStore<'_>, ws: i64) -> StoreResult<Arc<StoredPolicy>> {
    let read = read_policy(&s.reader()?, ws)?;
    let kept = s.state.policies.get(ws);
    // The same revision keeps what was recorded under it.
    let noted = match kept {
        Some(kept) if kept.revision == read.revision => Arc::clone(&kept.noted),
        _ => Arc::default(),
    };
    Ok(s.state.policies.put(ws, Arc::new(StoredPolicy { noted, ..read })))
}

fn read_policy(conn: &Connection, ws: i64) -> StoreResult<StoredPolicy> {
    let row = conn
        .query_row(
            "SELECT rules, revision, updated_at, updated_by, updated_by_member, updated_by_name
             FROM workspace_policies WHERE workspace_id = ?1",
            params![ws],
            |row| {
                Ok((
                    row.get::<String>("rules")?,
                    row.get::<i64>("revision")?,
                    row.get::<i64>("updated_at")?,
                    Author {
                        kind: row.get_parsed("updated_by", AuthorKind::parse)?,
                        member_id: row.get("updated_by_member")?,
                        name: row.get("updated_by_name")?,
                    },
                ))
            },
        )
        .optional()?;
    let read_at = Instant::now();
    Ok(match row {
        None => StoredPolicy {
            policy: Policy::default(),
            revision: 0,
            updated_at: None,
            updated_by: None,
            read_at,
            noted: Arc::default(),
        },
        Some((rules, revision, at, by)) => StoredPolicy {
            // Written by `set_policy` from a `Policy`; an unreadable one would be a bug.
            policy: serde_json::from_str(&rules)
                .map_err(|e| StoreError::Invalid(format!("the stored key policy: {e}")))?,
            revision,
            updated_at: Some(from_secs(at)),
            updated_by: Some(by),
            read_at,
            noted: Arc::default(),
        },
    })
}

/// Replaces the policy of `ws` by `new` (already checked), audited as `policy.changed` with
/// what changed; nothing is written when nothing changes. Returns the policy and the changes.
pub(super) fn set_policy(
    s: &AccessStore<'_>,
    ws: i64,
    new: &Policy,
    by: &Author,
) -> StoreResult<(Arc<StoredPolicy>, Vec<PolicyChange>)> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let old = read_policy(&tx, ws)?;
    let changes: Vec<PolicyChange> = PolicyRule::ALL
        .into_iter()
        .map(|rule| PolicyChange { rule, from: old.policy.describe(rule), to: new.describe(rule) })
        .filter(|change| change.from != change.to)
        .collect();
    if changes.is_empty() {
        drop(tx);
        drop(conn);
        return Ok((policy(s, ws)?, changes));
    }
    let rules = serde_json::to_string(new)
        .map_err(|e| StoreError::Invalid(format!("the key policy: {e}")))?;
    tx.prepare_cached(
        "INSERT INTO workspace_policies (workspace_id, rules, revision, updated_at, updated_by,
                                         updated_by_member, updated_by_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (workspace_id) DO UPDATE SET rules = ?2, revision = ?3, updated_at = ?4,
             updated_by = ?5, updated_by_member = ?6, updated_by_name = ?7",
    )?
    .execute(params![
        ws,
        rules,
        old.revision + 1,
        now.timestamp(),
        by.kind.as_str(),
        by.member_id,
        by.name
    ])?;
    let detail = changes
        .iter()
        .map(|c| format!("{}: {} → {}", c.rule, c.from, c.to))
        .collect::<Vec<_>>()
        .join("; ");
    super::audit::insert_event(
        &tx,
        now.timestamp(),
        &NewEvent {
            workspace_id: ws,
            kind: EventKind::PolicyChanged,
            key_id: None,
            key_prefix: None,
            detail: &format!("changed the key policy: {detail}"),
            actor: by,
        },
    )?;
    tx.commit()?;
    let stored = Arc::new(StoredPolicy {
        policy: new.clone(),
        revision: old.revision + 1,
        updated_at: Some(now),
        updated_by: Some(by.clone()),
        read_at: Instant::now(),
        noted: Arc::default(),
    });
    let stored = s.state.policies.put(ws, stored);
    Ok((stored, changes))
}

/// Records that `key` was refused for breaking `breach.rule`, once per key and rule under a
/// policy revision (and at most [`NOTED_MAX`] per revision): `key.blocked`, by the server.
pub(super) fn note_blocked(
    s: &AccessStore<'_>,
    policy: &StoredPolicy,
    key: &KeyIdentity,
    breach: &Breach,
) -> StoreResult<()> {
    {
        let mut noted = policy.noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if noted.len() >= NOTED_MAX || !noted.insert((key.key_id.clone(), breach.rule)) {
            return Ok(());
        }
    }
    let detail = format!(
        "blocked {}: it breaks the workspace policy's {} rule ({})",
        key.key_prefix, breach.rule, breach.message
    );
    s.record_event(&NewEvent {
        workspace_id: key.workspace_id,
        kind: EventKind::KeyBlocked,
        key_id: Some(&key.key_id),
        key_prefix: Some(&key.key_prefix),
        detail: &detail,
        actor: &Author::of(AuthorKind::Server),
    })
}

/// Says of each active key of `ws` among `keys` whether the policy blocks it.
pub(super) fn annotate(s: &AccessStore<'_>, ws: i64, keys: &mut [Key]) -> StoreResult<()> {
    let policy = policy(s, ws)?;
    if policy.policy.is_empty() {
        return Ok(());
    }
    for key in keys.iter_mut().filter(|k| k.status == KeyStatus::Active) {
        key.blocked = policy.policy.check(key.expires, key.access, &key.scopes).err();
        if key.blocked.is_some() && !key.flags.contains(&KeyFlag::Blocked) {
            key.flags.insert(0, KeyFlag::Blocked);
        }
    }
    Ok(())
}

/// The housekeeping's: revokes the active keys of every workspace whose policy says
/// `revoke-unused`, unused (since their last use, or their creation) for that long. Each is a
/// `key.revoked` event by the server naming the rule. Returns how many were revoked.
pub(super) fn revoke_unused(s: &AccessStore<'_>) -> StoreResult<usize> {
    let now = s.now();
    let policies: Vec<(i64, String)> = s
        .reader()?
        .query(
            "SELECT workspace_id, rules FROM workspace_policies WHERE rules LIKE ?1",
            params!["%revoke_unused_after%"],
        )?
        .iter()
        .map(|row| Ok((row.get::<i64>("workspace_id")?, row.get::<String>("rules")?)))
        .collect::<crate::store::db::DbResult<_>>()?;
    let mut revoked = 0;
    for (ws, rules) in policies {
        let Some(period) =
            serde_json::from_str::<Policy>(&rules).ok().and_then(|p| p.revoke_unused_after)
        else {
            continue;
        };
        let before = now - chrono::Duration::days(period.days());
        let ids: Vec<String> = s
            .reader()?
            .query(
                "SELECT id FROM mcp_keys WHERE workspace_id = ?1 AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > ?2)
                   AND COALESCE(last_used_at, created_at) < ?3
                 ORDER BY created_at LIMIT ?4",
                params![ws, now.timestamp(), before.timestamp(), REVOKED_PER_RUN],
            )?
            .iter()
            .map(|row| row.get::<String>("id"))
            .collect::<crate::store::db::DbResult<_>>()?;
        for id in ids {
            // A use noted in memory and not yet written counts.
            if s.state.pending_usage().get(&id).is_some_and(|slot| slot.used_at() >= before) {
                continue;
            }
            let reason = format!(
                "unused for {} days (the workspace policy's revoke-unused rule)",
                period.days()
            );
            match s.revoke_key_because(ws, &id, Some(&reason), &Author::of(AuthorKind::Server)) {
                Ok(_) => revoked += 1,
                // Revoked meanwhile by someone else: nothing to do.
                Err(StoreError::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use crate::api::{Access, ExpiryPolicy, KeyScopes, Policy, PolicyRule};

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn a_policy_names_the_first_rule_a_key_breaks_and_what_it_allows() {
        let policy = Policy {
            max_expiry: Some(ExpiryPolicy::Days90),
            access: Some(Access::ReadOnly),
            tools: list(&["search", "get_item"]),
            allow_ip: list(&["10.0.0.0/8"]),
            ..Policy::default()
        };
        assert_eq!(policy.allowed_expiries(), [ExpiryPolicy::Days30, ExpiryPolicy::Days90]);
        assert_eq!(policy.allowed_accesses(), [Access::ReadOnly]);
        let within = KeyScopes {
            tools: list(&["search"]),
            allow_ip: list(&["10.1.0.0/16"]),
            ..KeyScopes::default()
        };
        assert!(policy.check(ExpiryPolicy::Days30, Access::ReadOnly, &within).is_ok());
        let rule = |expires, access, scopes: &KeyScopes| {
            policy.check(expires, access, scopes).err().map(|b| b.rule)
        };
        assert_eq!(
            rule(ExpiryPolicy::Never, Access::ReadOnly, &within),
            Some(PolicyRule::MaxExpiry)
        );
        assert_eq!(
            rule(ExpiryPolicy::Days30, Access::ReadWrite, &within),
            Some(PolicyRule::Access)
        );
        let wide = KeyScopes { tools: None, ..within.clone() };
        assert_eq!(rule(ExpiryPolicy::Days30, Access::ReadOnly, &wide), Some(PolicyRule::Tools));
        let elsewhere = KeyScopes { allow_ip: list(&["192.168.0.0/16"]), ..within.clone() };
        assert_eq!(
            rule(ExpiryPolicy::Days30, Access::ReadOnly, &elsewhere),
            Some(PolicyRule::Addresses)
        );
        let outgrown = KeyScopes { allow_ip: list(&["0.0.0.0/0"]), ..within };
        assert_eq!(
            rule(ExpiryPolicy::Days30, Access::ReadOnly, &outgrown),
            Some(PolicyRule::Addresses)
        );
    }

    #[test]
    fn conforming_narrows_to_what_both_allow_and_never_widens() {
        let policy = Policy {
            max_expiry: Some(ExpiryPolicy::Days30),
            tools: list(&["search", "get_item"]),
            allow_ip: list(&["10.0.0.0/8", "192.168.1.0/24"]),
            ..Policy::default()
        };
        let had = KeyScopes {
            tools: list(&["search", "add_comment"]),
            journeys: list(&["jrn_a"]),
            allow_ip: list(&["10.2.0.0/16", "192.168.0.0/16", "172.16.0.0/12"]),
        };
        let (expires, access, scopes) =
            policy.conform(ExpiryPolicy::Never, Access::ReadWrite, &had).expect("conforms");
        assert_eq!((expires, access), (ExpiryPolicy::Days30, Access::ReadWrite));
        assert_eq!(scopes.tools, list(&["search"]));
        assert_eq!(scopes.journeys, list(&["jrn_a"]), "no journeys rule: kept");
        assert_eq!(scopes.allow_ip, list(&["10.2.0.0/16", "192.168.1.0/24"]));
        assert!(policy.check(expires, access, &scopes).is_ok());
        // A key that already keeps it comes back the same.
        assert_eq!(
            policy.conform(expires, access, &scopes).expect("conforms"),
            (expires, access, scopes)
        );
        // Nothing in common: refused, naming the rule.
        let apart = KeyScopes { tools: list(&["add_comment"]), ..KeyScopes::default() };
        let refused = policy.conform(ExpiryPolicy::Days30, Access::ReadWrite, &apart);
        assert_eq!(refused.err().map(|b| b.rule), Some(PolicyRule::Tools));
    }

    #[test]
    fn what_a_request_leaves_out_comes_from_the_policy() {
        let policy = Policy {
            max_expiry: Some(ExpiryPolicy::Days90),
            access: Some(Access::ReadOnly),
            journeys: list(&["jrn_a"]),
            ..Policy::default()
        };
        let (expires, access, scopes) = policy.fill(None, None, KeyScopes::default());
        assert_eq!((expires, access), (Some(ExpiryPolicy::Days90), Access::ReadOnly));
        assert_eq!(scopes.journeys, list(&["jrn_a"]));
        let with_default = Policy { default_expiry: Some(ExpiryPolicy::Days30), ..policy };
        assert_eq!(
            with_default.fill(None, None, KeyScopes::default()).0,
            Some(ExpiryPolicy::Days30)
        );
        assert_eq!(Policy::default().fill(None, None, KeyScopes::default()).0, None);
    }
}
