//! Members: people with a role per workspace, the personal credentials (`csm_…`) they sign in
//! with, and the one-time invitations (`csi_…`) that issue those. Like keys, only each token's
//! SHA-256 and display prefix are stored. A member's credential is looked up per request (never
//! cached), so a removal is in force on the very next request through every replica.

use chrono::{DateTime, Utc};

use super::AccessStore;
use super::audit::{NewEvent, insert_event};
use crate::api::{
    Author, AuthorKind, EventKind, Invitation, Key, Member, PENDING_INVITATIONS_MAX, Role,
    WorkspaceRole,
};
use crate::store::db::{Connection, DbResult, OptionalExtension as _, Row, params};
use crate::store::{StoreError, StoreResult, from_secs, new_id};
use crate::token::{PlainToken, TokenHash, TokenKind};

/// A member a credential belongs to, with their role in the workspace a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCaller {
    pub id: String,
    pub name: String,
    /// Their role in the workspace asked about (`None`: none there, or none asked about).
    pub role: Option<Role>,
}

/// Why an invitation code gives no credential.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("no invitation has this code: it was mistyped, or never issued by this server")]
    Unknown,
    #[error("this invitation expired at {0}; ask for a new one")]
    Expired(DateTime<Utc>),
    #[error("this invitation was already used; ask for a new one")]
    Used,
    #[error("this invitation was withdrawn by an owner of the workspace; ask for a new one")]
    Withdrawn,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::store::db::DbError> for InvitationError {
    fn from(error: crate::store::db::DbError) -> Self {
        Self::Store(error.into())
    }
}

/// The member a credential belongs to, if it is active and its member not removed, with their
/// role in the workspace `slug` (one indexed query, asked of the database every time).
pub(super) fn authenticate_member(
    s: &AccessStore<'_>,
    hash: &TokenHash,
    slug: Option<&str>,
) -> StoreResult<Option<MemberCaller>> {
    let conn = s.reader()?;
    let found = conn
        .prepare_cached(
            "SELECT m.id, m.name, r.role FROM member_credentials c
             JOIN members m ON m.id = c.member_id
             LEFT JOIN member_roles r ON r.member_id = m.id
                 AND r.workspace_id = (SELECT id FROM workspaces WHERE slug = ?2)
             WHERE c.token_hash = ?1 AND c.revoked_at IS NULL AND m.removed_at IS NULL",
        )?
        .query_row(params![hash.0.as_slice(), slug], |row| {
            Ok(MemberCaller {
                id: row.get("id")?,
                name: row.get("name")?,
                role: row.get::<Option<String>>("role")?.as_deref().and_then(Role::parse),
            })
        })
        .optional()?;
    Ok(found)
}

/// Every workspace a member has a role in, by slug.
pub(super) fn roles_of(s: &AccessStore<'_>, member_id: &str) -> StoreResult<Vec<WorkspaceRole>> {
    let rows = s.reader()?.query(
        "SELECT w.slug, r.role FROM member_roles r JOIN workspaces w ON w.id = r.workspace_id
         WHERE r.member_id = ?1 AND w.importing = 0 ORDER BY w.slug",
        params![member_id],
    )?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok(WorkspaceRole {
                workspace: row.get("slug")?,
                role: row.get_parsed("role", Role::parse)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()?)
}

const MEMBER_COLUMNS: &str = "m.id, m.name, m.email, m.created_at, r.role";

fn member_row(row: &Row) -> DbResult<Member> {
    Ok(Member {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        // The CHECK constraint admits only the closed set's names.
        role: row.get_parsed("role", Role::parse)?,
        created_at: from_secs(row.get("created_at")?),
    })
}

/// The members of a workspace, owners first, then by name.
pub(super) fn list_members(s: &AccessStore<'_>, workspace_id: i64) -> StoreResult<Vec<Member>> {
    let rows = s.reader()?.query(
        &format!(
            "SELECT {MEMBER_COLUMNS} FROM member_roles r JOIN members m ON m.id = r.member_id
             WHERE r.workspace_id = ?1 AND m.removed_at IS NULL
             ORDER BY CASE r.role WHEN 'owner' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END, m.name"
        ),
        params![workspace_id],
    )?;
    Ok(rows.iter().map(member_row).collect::<DbResult<Vec<_>>>()?)
}

/// The member of the workspace called `name`.
fn member_named(conn: &Connection, workspace_id: i64, name: &str) -> StoreResult<Member> {
    conn.prepare_cached(&format!(
        "SELECT {MEMBER_COLUMNS} FROM member_roles r JOIN members m ON m.id = r.member_id
         WHERE r.workspace_id = ?1 AND m.name = ?2 AND m.removed_at IS NULL"
    ))?
    .query_row(params![workspace_id, name], member_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no member named {name:?} in this workspace")))
}

/// How many owners the workspace has.
fn owner_count(conn: &Connection, workspace_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) AS n FROM member_roles r JOIN members m ON m.id = r.member_id
         WHERE r.workspace_id = ?1 AND r.role = 'owner' AND m.removed_at IS NULL",
        params![workspace_id],
        |row| row.get::<i64>("n"),
    )?)
}

fn audit(
    conn: &Connection,
    workspace_id: i64,
    at: i64,
    kind: EventKind,
    detail: &str,
    by: &Author,
) -> StoreResult<()> {
    insert_event(
        conn,
        at,
        &NewEvent { workspace_id, kind, key_id: None, key_prefix: None, detail, actor: by },
    )
}

/// Issues an invitation to join the workspace as `name` with `role`; returns it and its code
/// (the only copy there will be). A name an active member has is refused.
#[expect(clippy::too_many_arguments, reason = "one invitation's fields, each named")]
pub(super) fn create_invitation(
    s: &AccessStore<'_>,
    workspace_id: i64,
    workspace_slug: &str,
    name: &str,
    email: Option<&str>,
    role: Role,
    expires_at: DateTime<Utc>,
    by: &Author,
) -> StoreResult<(Invitation, PlainToken)> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    check_name_free(&tx, name)?;
    let pending: i64 = tx.query_row(
        &format!("SELECT COUNT(*) AS n FROM invitations i WHERE i.workspace_id = ?1 AND {PENDING}"),
        params![workspace_id, now.timestamp()],
        |row| row.get("n"),
    )?;
    if pending >= PENDING_INVITATIONS_MAX as i64 {
        return Err(StoreError::Conflict(format!(
            "the workspace has {PENDING_INVITATIONS_MAX} invitations waiting, the most it may \
             have; withdraw some first (custory-mcp members invitations)"
        )));
    }
    let code = PlainToken::generate(TokenKind::Invitation);
    tx.execute(
        "INSERT INTO invitations (token_hash, prefix, workspace_id, role, name, email,
                                  created_at, expires_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            code.hash().0.as_slice(),
            code.display_prefix(),
            workspace_id,
            role.as_str(),
            name,
            email,
            now.timestamp(),
            expires_at.timestamp(),
            by.label(),
        ],
    )?;
    let detail = format!("invited {name:?} as {role} (until {})", expires_at.format("%F %R UTC"));
    audit(&tx, workspace_id, now.timestamp(), EventKind::MemberInvited, &detail, by)?;
    tx.commit()?;
    let invitation = Invitation {
        name: name.to_owned(),
        role,
        workspace: workspace_slug.to_owned(),
        prefix: code.display_prefix(),
        expires_at,
        invited_by: by.label(),
        created_at: from_secs(now.timestamp()),
        email: email.map(str::to_owned),
    };
    Ok((invitation, code))
}

/// An invitation that may still be redeemed (over `invitations i`, `?2` the time now).
const PENDING: &str = "i.used_at IS NULL AND i.withdrawn_at IS NULL AND i.expires_at > ?2";

const INVITATION_COLUMNS: &str = "w.slug, i.name, i.role, i.prefix, i.email, i.created_at, \
                                  i.expires_at, i.created_by, i.withdrawn_at";

fn invitation_row(row: &Row) -> DbResult<Invitation> {
    Ok(Invitation {
        name: row.get("name")?,
        // The CHECK constraint admits only the closed set's names.
        role: row.get_parsed("role", Role::parse)?,
        workspace: row.get("slug")?,
        prefix: row.get("prefix")?,
        expires_at: from_secs(row.get("expires_at")?),
        invited_by: row.get("created_by")?,
        created_at: from_secs(row.get("created_at")?),
        email: row.get("email")?,
    })
}

/// The workspace's invitations still waiting to be redeemed, soonest to expire first (at most
/// [`PENDING_INVITATIONS_MAX`]: issuing more is refused).
pub(super) fn list_invitations(
    s: &AccessStore<'_>,
    workspace_id: i64,
) -> StoreResult<Vec<Invitation>> {
    let rows = s.reader()?.query(
        &format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i
             JOIN workspaces w ON w.id = i.workspace_id
             WHERE i.workspace_id = ?1 AND {PENDING}
             ORDER BY i.expires_at, i.id LIMIT {PENDING_INVITATIONS_MAX}"
        ),
        params![workspace_id, s.now().timestamp()],
    )?;
    Ok(rows.iter().map(invitation_row).collect::<DbResult<Vec<_>>>()?)
}

/// Withdraws the workspace's invitation whose code begins with `prefix` (its display prefix),
/// or the one pending invitation for `prefix` as a name, so that its code is refused from now
/// on. Returns it and whether it had been withdrawn already; one used or expired is left as it
/// is and named as such.
pub(super) fn withdraw_invitation(
    s: &AccessStore<'_>,
    workspace_id: i64,
    prefix: &str,
    by: &Author,
) -> StoreResult<(Invitation, bool)> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    // By prefix (`?2`), whatever its state (issued by now, `?3`); else by name, among the
    // waiting ones.
    let by_prefix = "i.prefix = ?2 AND i.created_at <= ?3";
    let by_name = format!("i.name = ?2 AND {}", PENDING.replace("?2", "?3"));
    let mut matches = Vec::new();
    for condition in [by_prefix, by_name.as_str()] {
        let rows = tx.query(
            &format!(
                "SELECT i.id, i.used_at, {INVITATION_COLUMNS} FROM invitations i
                 JOIN workspaces w ON w.id = i.workspace_id
                 WHERE i.workspace_id = ?1 AND {condition} ORDER BY i.id LIMIT 2"
            ),
            params![workspace_id, prefix, now],
        )?;
        matches = rows
            .iter()
            .map(|row| {
                Ok((
                    row.get::<i64>("id")?,
                    invitation_row(row)?,
                    row.get::<Option<i64>>("used_at")?,
                    row.get::<Option<i64>>("withdrawn_at")?,
                ))
            })
            .collect::<DbResult<Vec<_>>>()?;
        if !matches.is_empty() {
            break;
        }
    }
    if matches.len() > 1 {
        return Err(StoreError::Conflict(format!(
            "more than one invitation for {prefix:?} is waiting; name one by its prefix \
             (custory-mcp members invitations)"
        )));
    }
    let Some((id, invitation, used_at, withdrawn_at)) = matches.pop() else {
        return Err(StoreError::NotFound(format!(
            "no invitation {prefix:?} in this workspace (custory-mcp members invitations lists \
             the waiting ones by prefix)"
        )));
    };
    if withdrawn_at.is_some() {
        return Ok((invitation, true));
    }
    if used_at.is_some() {
        return Err(StoreError::Conflict(format!(
            "the invitation {} was already redeemed by {:?}; to take them out, run \
             custory-mcp members remove {}",
            invitation.prefix,
            invitation.name,
            crate::text::shell_quote(&invitation.name)
        )));
    }
    let detail = format!(
        "withdrew the invitation {} for {:?} ({})",
        invitation.prefix, invitation.name, invitation.role
    );
    mark_withdrawn(&tx, workspace_id, id, now, &detail, by)?;
    tx.commit()?;
    Ok((invitation, false))
}

/// Refuses the member credential with this hash from now on (its token was reported as
/// leaked), noting it in the audit of every workspace its member has a role in. The member
/// stays; an owner removes and invites them again to give them a new credential. Returns
/// whether an active credential was revoked.
pub(super) fn revoke_member_credential(
    s: &AccessStore<'_>,
    hash: &TokenHash,
    why: &str,
    by: &Author,
) -> StoreResult<bool> {
    let now = s.now().timestamp();
    // A stranger's report of a made-up token is answered by a reader, without a turn at the
    // writer (reports come 60 a minute per address, each of up to 100 tokens).
    let known = s
        .reader()?
        .prepare_cached(
            "SELECT 1 FROM member_credentials WHERE token_hash = ?1 AND revoked_at IS NULL",
        )?
        .exists(params![hash.0.as_slice()])?;
    if !known {
        return Ok(false);
    }
    let conn = s.writer();
    let tx = conn.transaction()?;
    let found = tx
        .prepare_cached(
            "SELECT c.id, c.prefix, m.name, m.id AS member_id FROM member_credentials c
             JOIN members m ON m.id = c.member_id
             WHERE c.token_hash = ?1 AND c.revoked_at IS NULL",
        )?
        .query_row(params![hash.0.as_slice()], |row| {
            Ok((
                row.get::<i64>("id")?,
                row.get::<String>("prefix")?,
                row.get::<String>("name")?,
                row.get::<String>("member_id")?,
            ))
        })
        .optional()?;
    let Some((id, prefix, name, member_id)) = found else {
        return Ok(false);
    };
    tx.execute("UPDATE member_credentials SET revoked_at = ?1 WHERE id = ?2", params![now, id])?;
    let workspaces =
        tx.query("SELECT workspace_id FROM member_roles WHERE member_id = ?1", params![member_id])?;
    let detail = format!(
        "revoked {name:?}'s credential {prefix}: {why}; to give them a new one, remove them and \
         invite them again"
    );
    for row in &workspaces {
        let workspace_id = row.get::<i64>("workspace_id")?;
        audit(&tx, workspace_id, now, EventKind::MemberCredentialRevoked, &detail, by)?;
    }
    tx.commit()?;
    Ok(true)
}

/// Withdraws the waiting invitation with this code's hash (it was reported as leaked).
/// Returns whether one was withdrawn.
pub(super) fn withdraw_invitation_by_code(
    s: &AccessStore<'_>,
    hash: &TokenHash,
    why: &str,
    by: &Author,
) -> StoreResult<bool> {
    let now = s.now().timestamp();
    // As for a credential: a made-up code is answered by a reader.
    if !invitation_known(s, hash)? {
        return Ok(false);
    }
    let conn = s.writer();
    let tx = conn.transaction()?;
    let found = tx
        .prepare_cached(&format!(
            "SELECT i.id, i.workspace_id, i.prefix, i.name FROM invitations i
             WHERE i.token_hash = ?1 AND {PENDING}"
        ))?
        .query_row(params![hash.0.as_slice(), now], |row| {
            Ok((
                row.get::<i64>("id")?,
                row.get::<i64>("workspace_id")?,
                row.get::<String>("prefix")?,
                row.get::<String>("name")?,
            ))
        })
        .optional()?;
    let Some((id, workspace_id, prefix, name)) = found else {
        return Ok(false);
    };
    let detail = format!("withdrew the invitation {prefix} for {name:?}: {why}");
    mark_withdrawn(&tx, workspace_id, id, now, &detail, by)?;
    tx.commit()?;
    Ok(true)
}

/// Withdraws the invitation `id` and records it (in the caller's transaction).
fn mark_withdrawn(
    conn: &Connection,
    workspace_id: i64,
    id: i64,
    at: i64,
    detail: &str,
    by: &Author,
) -> StoreResult<()> {
    conn.execute("UPDATE invitations SET withdrawn_at = ?1 WHERE id = ?2", params![at, id])?;
    audit(conn, workspace_id, at, EventKind::MemberInvitationWithdrawn, detail, by)
}

/// Deletes invitations that were used, withdrawn or expired before `before`: their story stays
/// in the audit trail. Returns how many went.
pub(super) fn prune_invitations(s: &AccessStore<'_>, before: DateTime<Utc>) -> StoreResult<usize> {
    let before = before.timestamp();
    Ok(s.writer().execute(
        "DELETE FROM invitations WHERE used_at < ?1 OR withdrawn_at < ?1 OR expires_at < ?1",
        params![before],
    )?)
}

/// Names are how people are told apart in tables and `--by`: one active member per name.
fn check_name_free(conn: &Connection, name: &str) -> StoreResult<()> {
    if AuthorKind::parse(name).is_some() {
        return Err(StoreError::Invalid(format!(
            "{name:?} names a kind of actor in the audit trail; choose another name"
        )));
    }
    let taken = conn
        .prepare_cached("SELECT 1 FROM members WHERE name = ?1 AND removed_at IS NULL")?
        .exists(params![name])?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "a member named {name:?} already exists on this server; choose another name"
        )));
    }
    Ok(())
}

/// Redeems an invitation once: a new member with the invitation's role, and their personal
/// credential (the only copy there will be). Returns the member, the workspace's slug and the
/// credential.
/// Whether an invitation was ever issued with this code's hash (used, expired or not): a
/// stranger's guess is answered by a reader, without a turn at the writer.
pub(super) fn invitation_known(s: &AccessStore<'_>, hash: &TokenHash) -> StoreResult<bool> {
    Ok(s.reader()?
        .prepare_cached("SELECT 1 FROM invitations WHERE token_hash = ?1")?
        .exists(params![hash.0.as_slice()])?)
}

pub(super) fn redeem_invitation(
    s: &AccessStore<'_>,
    code: &PlainToken,
) -> Result<(Member, String, PlainToken), InvitationError> {
    let now = s.now();
    let hash = code.hash();
    if !invitation_known(s, &hash)? {
        return Err(InvitationError::Unknown);
    }
    let conn = s.writer();
    let tx = conn.transaction()?;
    let (id, workspace_id, slug, role, name, email, expires_at, used_at, withdrawn) = tx
        .query_row(
            "SELECT i.id, i.workspace_id, w.slug, i.role, i.name, i.email, i.expires_at, i.used_at,
                i.withdrawn_at
         FROM invitations i JOIN workspaces w ON w.id = i.workspace_id WHERE i.token_hash = ?1",
            params![hash.0.as_slice()],
            |row| {
                Ok((
                    row.get::<i64>("id")?,
                    row.get::<i64>("workspace_id")?,
                    row.get::<String>("slug")?,
                    row.get_parsed("role", Role::parse)?,
                    row.get::<String>("name")?,
                    row.get::<Option<String>>("email")?,
                    from_secs(row.get("expires_at")?),
                    row.get::<Option<i64>>("used_at")?,
                    row.get::<Option<i64>>("withdrawn_at")?.is_some(),
                ))
            },
        )?;
    if used_at.is_some() {
        return Err(InvitationError::Used);
    }
    if withdrawn {
        return Err(InvitationError::Withdrawn);
    }
    if expires_at <= now {
        return Err(InvitationError::Expired(expires_at));
    }
    check_name_free(&tx, &name)?;
    let member_id = new_id("mem");
    tx.execute(
        "INSERT INTO members (id, name, email, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![member_id, name, email, now.timestamp()],
    )?;
    tx.execute(
        "INSERT INTO member_roles (member_id, workspace_id, role, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![member_id, workspace_id, role.as_str(), now.timestamp()],
    )?;
    let credential = PlainToken::generate(TokenKind::Member);
    tx.execute(
        "INSERT INTO member_credentials (member_id, token_hash, prefix, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            member_id,
            credential.hash().0.as_slice(),
            credential.display_prefix(),
            now.timestamp()
        ],
    )?;
    tx.execute(
        "UPDATE invitations SET used_at = ?1, member_id = ?2 WHERE id = ?3",
        params![now.timestamp(), member_id, id],
    )?;
    let by = Author::member(AuthorKind::Member, &member_id, &name);
    let detail = format!("{name:?} joined as {role}");
    audit(&tx, workspace_id, now.timestamp(), EventKind::MemberJoined, &detail, &by)?;
    let member = member_named(&tx, workspace_id, &name)?;
    tx.commit()?;
    Ok((member, slug, credential))
}

/// Gives a member of the workspace another role; the last owner stays an owner.
pub(super) fn change_role(
    s: &AccessStore<'_>,
    workspace_id: i64,
    name: &str,
    role: Role,
    by: &Author,
) -> StoreResult<Member> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let member = member_named(&tx, workspace_id, name)?;
    if member.role == role {
        return Ok(member);
    }
    if member.role == Role::Owner && owner_count(&tx, workspace_id)? <= 1 {
        return Err(StoreError::Conflict(format!(
            "{name:?} is the workspace's last owner and stays one; make another member owner \
             first"
        )));
    }
    tx.execute(
        "UPDATE member_roles SET role = ?1 WHERE member_id = ?2 AND workspace_id = ?3",
        params![role.as_str(), member.id, workspace_id],
    )?;
    let detail = format!("changed {name:?} from {} to {role}", member.role);
    audit(&tx, workspace_id, now, EventKind::MemberRoleChanged, &detail, by)?;
    let member = member_named(&tx, workspace_id, name)?;
    tx.commit()?;
    Ok(member)
}

/// What removing a member did.
#[derive(Debug)]
pub struct Removal {
    pub member: Member,
    pub revoked_keys: Vec<Key>,
    /// They had no role left, so their credential was revoked with them.
    pub credential_revoked: bool,
}

/// Takes a member out of the workspace (the last owner stays), revoking the active keys they
/// created there when `revoke_keys`. A member left with no role is removed from the server,
/// and their credential refused from the next request on.
pub(super) fn remove_member(
    s: &AccessStore<'_>,
    workspace_id: i64,
    name: &str,
    revoke_keys: bool,
    by: &Author,
) -> StoreResult<Removal> {
    let now = s.now();
    let at = now.timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let member = member_named(&tx, workspace_id, name)?;
    if member.role == Role::Owner && owner_count(&tx, workspace_id)? <= 1 {
        return Err(StoreError::Conflict(format!(
            "{name:?} is the workspace's last owner and cannot be removed; make another member \
             owner first"
        )));
    }
    tx.execute(
        "DELETE FROM member_roles WHERE member_id = ?1 AND workspace_id = ?2",
        params![member.id, workspace_id],
    )?;
    let mut revoked = Vec::new();
    if revoke_keys {
        let ids = tx.query(
            "SELECT id FROM mcp_keys WHERE workspace_id = ?1 AND created_by_member = ?2
               AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)",
            params![workspace_id, member.id, at],
        )?;
        let ids = ids.iter().map(|row| row.get::<String>("id")).collect::<DbResult<Vec<_>>>()?;
        for id in ids {
            tx.execute("UPDATE mcp_keys SET revoked_at = ?1 WHERE id = ?2", params![at, id])?;
            let key = super::keys::key_on(&tx, workspace_id, &id, now)?;
            let detail = format!("revoked {:?}: its creator {name:?} was removed", key.name);
            super::keys::audit_key(
                &tx,
                workspace_id,
                now,
                EventKind::KeyRevoked,
                &key,
                &detail,
                by,
            )?;
            revoked.push(key);
        }
    }
    let roles_left = tx
        .prepare_cached("SELECT 1 FROM member_roles WHERE member_id = ?1")?
        .exists(params![member.id])?;
    if !roles_left {
        tx.execute("UPDATE members SET removed_at = ?1 WHERE id = ?2", params![at, member.id])?;
        tx.execute(
            "UPDATE member_credentials SET revoked_at = ?1
             WHERE member_id = ?2 AND revoked_at IS NULL",
            params![at, member.id],
        )?;
    }
    let keys = match (revoke_keys, revoked.len()) {
        (false, _) => "their keys kept".to_owned(),
        (true, 1) => "1 key revoked".to_owned(),
        (true, n) => format!("{n} keys revoked"),
    };
    let detail = format!("removed {name:?} ({}; {keys})", member.role);
    audit(&tx, workspace_id, at, EventKind::MemberRemoved, &detail, by)?;
    tx.commit()?;
    for key in &revoked {
        super::keys::reindex_key(s, &conn, &key.id)?;
    }
    Ok(Removal { member, revoked_keys: revoked, credential_revoked: !roles_left })
}

/// The workspaces a member has a role in, by slug.
pub(super) fn member_workspaces(
    s: &AccessStore<'_>,
    member_id: &str,
) -> StoreResult<Vec<crate::api::Workspace>> {
    let rows = s.reader()?.query(
        "SELECT w.slug, w.name, w.created_at FROM member_roles r
         JOIN workspaces w ON w.id = r.workspace_id
         WHERE r.member_id = ?1 AND w.importing = 0 ORDER BY w.slug",
        params![member_id],
    )?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok(crate::api::Workspace {
                slug: row.get("slug")?,
                name: row.get("name")?,
                created_at: from_secs(row.get("created_at")?),
            })
        })
        .collect::<DbResult<Vec<_>>>()?)
}
