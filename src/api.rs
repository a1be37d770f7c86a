//! The admin API's wire types: the contract between the server, the CLI and outside scripts.
//! Change a field here and both sides change in the same commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A workspace as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Declares a closed set of values: an enum each of whose values has one name, written here
/// once. The command line reads it (clap's `ValueEnum`), the wire carries it (serde, through
/// `as_str` and `TryFrom`), and every message that lists the allowed values is made from it.
/// A new value is one line here; the compiler then points at each `match` that must decide
/// about it.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $set:ident {
            $( $(#[$value_meta:meta])* $value:ident = $name:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(into = "&'static str", try_from = "serde_json::Value")]
        pub enum $set {
            $( $(#[$value_meta])* #[value(name = $name)] $value, )+
        }

        impl $set {
            /// Every value, in order.
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$value),+];

            /// The name of each value, as the command line and the wire spell it.
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$value => $name, )+
                }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(Self::$value), )+
                    _ => None,
                }
            }

            /// `30d, 90d, never`: the names, for a message.
            pub fn names() -> String {
                Self::NAMES.join(", ")
            }
        }

        impl From<$set> for &'static str {
            fn from(value: $set) -> Self {
                value.as_str()
            }
        }

        /// Any JSON value, so that a number or an unknown name is refused with the same
        /// sentence listing the names.
        impl TryFrom<serde_json::Value> for $set {
            type Error = NotOneOf;

            fn try_from(value: serde_json::Value) -> Result<Self, NotOneOf> {
                value
                    .as_str()
                    .and_then(Self::parse)
                    .ok_or_else(|| NotOneOf { value, names: Self::names() })
            }
        }

        impl std::fmt::Display for $set {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A value outside a closed set: `"7d" is not one of 30d, 90d, never` (the request field it
/// was sent in goes in front).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not one of {names}")]
pub struct NotOneOf {
    /// As JSON: a name is quoted.
    pub value: serde_json::Value,
    pub names: String,
}

closed_set! {
    /// How long a key lives, chosen at creation.
    pub enum ExpiryPolicy {
        Days30 = "30d",
        Days90 = "90d",
        Never = "never",
    }
}

impl ExpiryPolicy {
    pub fn days(self) -> Option<i64> {
        match self {
            Self::Days30 => Some(30),
            Self::Days90 => Some(90),
            Self::Never => None,
        }
    }

    /// `30 days`, or `never`.
    pub fn lifetime(self) -> String {
        self.days().map_or_else(|| "never".to_owned(), |days| format!("{days} days"))
    }
}

closed_set! {
    /// What an MCP key may do.
    #[derive(Default)]
    pub enum Access {
        /// Read and update Custory context.
        #[default]
        ReadWrite = "read-write",
        /// Read only: write tools are neither listed nor callable.
        ReadOnly = "read-only",
    }
}

closed_set! {
    /// A key's status, derived from its timestamps (never stored).
    pub enum KeyStatus {
        Active = "active",
        Expired = "expired",
        Revoked = "revoked",
    }
}

impl KeyStatus {
    /// `revoked` if revoked, else `expired` if `expires_at` ≤ now, else `active`.
    pub fn derive(
        revoked_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else {
            Self::Active
        }
    }
}

/// An MCP key as the admin API shows it. Never holds the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub access: Access,
    pub expires: ExpiryPolicy,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_client: Option<String>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub status: KeyStatus,
    /// The OAuth client whose sign-in minted this key, for keys made by consent.
    #[serde(default)]
    pub oauth_client: Option<OAuthClientRef>,
    /// Who made the key: the server administrator, a member, or an OAuth consent (by a member
    /// when one signed in).
    #[serde(default)]
    pub created_by: Author,
    /// What about an active key needs a decision (`keys review`); empty for the others.
    #[serde(default)]
    pub flags: Vec<KeyFlag>,
    /// For a `shared` key: the addresses and clients it was used from in the last 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedUse>,
    /// What the key is confined to beyond its access (absent: nothing more).
    #[serde(default, skip_serializing_if = "KeyScopes::is_unlimited")]
    pub scopes: KeyScopes,
    /// For an active key that breaks the workspace policy: the rule; its calls are refused
    /// (403) until it is rotated or the policy changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Breach>,
}

impl Key {
    /// What `self`'s terms changed to in `new` (`expires never → 90d, read-write → read-only,
    /// limited to …`), or nothing: a rotation narrowed to the workspace policy says so.
    pub fn terms_changed(&self, new: &Key) -> Option<String> {
        let mut changed = Vec::new();
        if self.expires != new.expires {
            changed.push(format!("expires {} → {}", self.expires, new.expires));
        }
        if self.access != new.access {
            changed.push(format!("{} → {}", self.access, new.access));
        }
        if self.scopes != new.scopes {
            changed.push(format!("limited to {}", new.scopes.describe()));
        }
        (!changed.is_empty()).then(|| changed.join(", "))
    }
}

/// What a key is confined to beyond its access, fixed at creation: each limit absent means
/// none. A request may narrow it (headers), a key may be narrowed later, never widened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScopes {
    /// The tools it lists and may call, by name (groups expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// The journeys (`jrn_…`) it reads and writes in; everything outside is as if missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<Vec<String>>,
    /// The client networks (CIDRs) it may be used from; elsewhere is 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip: Option<Vec<String>>,
}

impl KeyScopes {
    /// No limit at all beyond the key's access.
    pub fn is_unlimited(&self) -> bool {
        self.tools.is_none() && self.journeys.is_none() && self.allow_ip.is_none()
    }

    /// Whether the key may list and call the tool `name`.
    pub fn allows_tool(&self, name: &str) -> bool {
        self.tools.as_ref().is_none_or(|tools| tools.iter().any(|tool| tool == name))
    }

    /// Whether the key may read and write in the journey `id` (`jrn_…`).
    pub fn allows_journey(&self, id: &str) -> bool {
        self.journeys.as_ref().is_none_or(|journeys| journeys.iter().any(|j| j == id))
    }

    /// `Ok` when `self` allows nothing `old` does not (each of its networks inside one of
    /// `old`'s), else what it would widen.
    pub fn within(&self, old: &KeyScopes) -> Result<(), String> {
        let subset =
            |new: &Option<Vec<String>>, old: &Option<Vec<String>>, what: &str| match (new, old) {
                (_, None) => Ok(()),
                (None, Some(_)) => Err(format!("it would lift the limit on {what}")),
                (Some(new), Some(old)) => match new.iter().find(|n| !old.contains(n)) {
                    Some(extra) => Err(format!("{what}: {extra} is not among the key's")),
                    None => Ok(()),
                },
            };
        subset(&self.tools, &old.tools, "tools")?;
        subset(&self.journeys, &old.journeys, "journeys")?;
        if let (Some(new), Some(old)) = (&self.allow_ip, &old.allow_ip) {
            if let Some(extra) = new.iter().find(|net| !net_inside(net, old)) {
                return Err(format!("addresses: {extra} is not inside the key's networks"));
            }
        } else if self.allow_ip.is_none() && old.allow_ip.is_some() {
            return Err("it would lift the limit on addresses".into());
        }
        Ok(())
    }

    /// One line for a person: `tools: a, b; journeys: jrn_1; addresses: 10.0.0.0/8`, or
    /// `none` when nothing is limited.
    pub fn describe(&self) -> String {
        let parts: Vec<String> =
            [("tools", &self.tools), ("journeys", &self.journeys), ("addresses", &self.allow_ip)]
                .into_iter()
                .filter_map(|(what, list)| {
                    list.as_ref().map(|list| format!("{what}: {}", list.join(", ")))
                })
                .collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join("; ") }
    }
}

closed_set! {
    /// Named groups of tools a key may be limited to (`keys create --tools read,comments`).
    pub enum ToolGroup {
        /// Every tool that only reads
        Read = "read",
        /// Journeys, stages and steps: reading the map and changing it
        Map = "map",
        /// Items and their links
        Items = "items",
        /// Reading items and commenting on them
        Comments = "comments",
        /// Personas and their links to journeys
        Personas = "personas",
    }
}

/// Something about an active key that needs a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFlag {
    /// Used by more than one client, or from more than one address, in the last 7 days: one
    /// key per client or machine.
    Shared,
    /// Unused for 30 days, or never used 7 days after its creation.
    Stale,
    /// Never used, 7 days after its creation (also `stale`).
    NeverUsed,
    /// Expires within 7 days.
    ExpiresSoon,
    /// Read-write, used, and never used to write in its first 7 days or since: read-only
    /// would do.
    NeverWrote,
    /// Breaks the workspace policy (see `Key::blocked`): its calls are refused until it is
    /// rotated or the policy changes.
    Blocked,
}

impl KeyFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Stale => "stale",
            Self::NeverUsed => "never used",
            Self::ExpiresSoon => "expires soon",
            Self::NeverWrote => "never wrote",
            Self::Blocked => "blocked",
        }
    }
}

/// Where a shared key was used from (in the window), each list in alphabetical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedUse {
    pub addresses: Vec<String>,
    pub clients: Vec<String>,
}

/// The OAuth client a key was minted for: its `client_id` and the name it registered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientRef {
    pub client_id: String,
    pub name: String,
}

/// One entry of a workspace's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub key_id: Option<String>,
    pub key_prefix: Option<String>,
    pub detail: String,
    /// Who did it.
    #[serde(default)]
    pub actor: Author,
    /// For a call a key made (`call.tool`, `call.resource`, `call.prompt`): what it touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallDetail>,
}

closed_set! {
    /// Which record a line of the audit stream comes from; each counts its ids apart.
    pub enum StreamSource {
        /// The audit trail (`custory-mcp audit`).
        Audit = "audit",
        /// The record of the calls keys made (`custory-mcp audit --calls`).
        Calls = "calls",
    }
}

/// One line of the audit stream (`serve --audit-sink URL`): an entry of a workspace's audit
/// trail or of its record of calls, as `audit --json` shows it, with the record it comes from
/// and the workspace's slug. `(source, id)` names a line, the same at every resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamLine {
    pub source: StreamSource,
    pub workspace: String,
    #[serde(flatten)]
    pub event: Event,
}

closed_set! {
    /// What an entry of the audit trail records.
    pub enum EventKind {
        /// A key was made (by `keys create`, a rotation or an OAuth consent).
        KeyCreated = "key.created",
        KeyRevoked = "key.revoked",
        KeyRotated = "key.rotated",
        /// A key's access or scopes were narrowed (`keys narrow`).
        KeyNarrowed = "key.narrowed",
        /// A key was used from an address or by a client it was not used from before.
        KeyNewOrigin = "key.new_origin",
        /// A key expires within 30, 7 or 1 days (announced once per threshold).
        KeyExpiring = "key.expiring",
        /// A key reached its expiry.
        KeyExpired = "key.expired",
        /// A request presented a token that is not an active key.
        AuthRejected = "auth.rejected",
        /// A write tool ran (reads are in the record of calls).
        ToolCalled = "tool.called",
        WorkspaceImported = "workspace.imported",
        JourneyImported = "journey.imported",
        /// The whole workspace was exported (`custory-mcp export`).
        WorkspaceExported = "workspace.exported",
        /// A webhook endpoint was added or removed (`webhooks add|remove`).
        WebhookAdded = "webhook.added",
        WebhookRemoved = "webhook.removed",
        /// A member was invited, joined, given another role, or removed.
        MemberInvited = "member.invited",
        /// An owner withdrew an invitation before it was redeemed.
        MemberInvitationWithdrawn = "member.invitation_withdrawn",
        MemberJoined = "member.joined",
        MemberRoleChanged = "member.role_changed",
        MemberRemoved = "member.removed",
        /// A member's credential was refused from then on (its token was reported as leaked).
        MemberCredentialRevoked = "member.credential_revoked",
        /// An owner changed the workspace's key policy (`policy set`).
        PolicyChanged = "policy.changed",
        /// A key was first refused for breaking the workspace policy (once per key and rule).
        KeyBlocked = "key.blocked",
        /// From the record of calls (`audit --calls`): a tool call, a resource read, a prompt.
        CallTool = "call.tool",
        CallResource = "call.resource",
        CallPrompt = "call.prompt",
    }
}

closed_set! {
    /// A member's role in one workspace. `owner`: members and every key; `editor`: creates
    /// keys, rotates and revokes the ones they created, reads keys and the audit; `viewer`:
    /// reads keys and the audit.
    pub enum Role {
        Owner = "owner",
        Editor = "editor",
        Viewer = "viewer",
    }
}

impl Role {
    /// Whether this role includes everything `other` may do.
    pub fn includes(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Editor => 2,
            Self::Viewer => 1,
        }
    }

    /// What the role may do, in a sentence.
    pub fn may(self) -> &'static str {
        match self {
            Self::Owner => "manage members and every key; read keys and the audit",
            Self::Editor => "create keys; rotate and revoke own keys; read keys and the audit",
            Self::Viewer => "read keys and the audit",
        }
    }
}

closed_set! {
    /// Who did something: the audit trail's actors and the makers of keys.
    #[derive(Default)]
    pub enum AuthorKind {
        /// The server's own administrator (the owner credential, `csa_…`).
        #[default]
        Administrator = "administrator",
        /// A member, with their personal credential.
        Member = "member",
        /// An OAuth consent in the browser (by a member, when one signed in).
        Consent = "consent",
        /// An MCP key (a write tool call).
        Key = "key",
        /// A leaked-token report (`POST /api/tokens/revoke`).
        LeakReport = "leak-report",
        /// The server itself (a new origin noticed, a token refused).
        Server = "server",
    }
}

/// Who did something (an event's `actor`, a key's `created_by`): a kind, and the member when
/// one did it (their id, and their name at the time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub kind: AuthorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Author {
    pub fn of(kind: AuthorKind) -> Self {
        Self { kind, member_id: None, name: None }
    }

    pub fn member(kind: AuthorKind, id: &str, name: &str) -> Self {
        Self { kind, member_id: Some(id.to_owned()), name: Some(name.to_owned()) }
    }

    /// How a table shows it: the member's name, else the kind (`administrator`, `key`…).
    pub fn label(&self) -> String {
        match (&self.name, self.kind) {
            (Some(name), AuthorKind::Consent) => format!("{name} (consent)"),
            (Some(name), _) => name.clone(),
            (None, kind) => kind.as_str().to_owned(),
        }
    }
}

closed_set! {
    /// How a call a key made ended.
    pub enum CallOutcome {
        /// Answered.
        Ok = "ok",
        /// Answered with a tool error (`isError`: bad arguments, not found, read-only key…).
        Error = "error",
        /// Refused as a JSON-RPC error (an unknown tool, a revoked key mid-batch…).
        Refused = "refused",
    }
}

closed_set! {
    /// What a key's origin is: an address (IPv6 by /64) or a client (its name, no version).
    pub enum OriginKind {
        Address = "address",
        Client = "client",
    }
}

/// A call in the audit trail (`audit --key K`): the tool (or `resources/read`, `prompts/get`),
/// how it ended, the size of its answer and the ids it touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDetail {
    pub what: String,
    pub outcome: CallOutcome,
    pub bytes: i64,
    /// The ids it was asked about, then the first it answered with.
    pub ids: Vec<String>,
    /// Whether its answer carried more ids than these.
    #[serde(default)]
    pub more_ids: bool,
    pub ip: Option<String>,
}

/// How often a key called one tool (or read resources, or got prompts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCount {
    pub what: String,
    pub calls: i64,
}

/// A key's calls over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsageTotals {
    pub calls: i64,
    /// Calls that ended in a tool error or were refused.
    pub errors: i64,
    /// Bytes answered.
    pub bytes: i64,
    /// Busiest first.
    pub tools: Vec<ToolCount>,
}

/// One hour of a key's calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourUsage {
    pub hour: DateTime<Utc>,
    pub calls: i64,
    pub errors: i64,
    pub bytes: i64,
    pub tools: Vec<ToolCount>,
}

/// An address (IPv6 by /64) or client (its name, without version) a key has been used from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOrigin {
    pub kind: OriginKind,
    pub value: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// `GET …/mcp-keys/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsageResponse {
    pub since: DateTime<Utc>,
    pub totals: KeyUsageTotals,
    /// Newest first.
    pub hours: Vec<HourUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Most recently seen first.
    pub origins: Vec<KeyOrigin>,
}

/// One key's line of `GET …/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsageRow {
    pub key_id: String,
    pub key_name: String,
    pub key_prefix: String,
    pub calls: i64,
    pub errors: i64,
    pub bytes: i64,
    /// The start of the last hour it was used in.
    pub last_hour: DateTime<Utc>,
    pub tools: Vec<ToolCount>,
}

/// `GET …/usage`: every key used since `since`, busiest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceUsageResponse {
    pub since: DateTime<Utc>,
    pub keys: Vec<KeyUsageRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateWorkspace {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// What the new workspace starts with; `blank` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

closed_set! {
    /// What a new workspace starts with: nothing, or one of the templates the server ships (a
    /// `custory-workspace/1` document with one journey, a persona and a few example items).
    #[derive(Default)]
    pub enum Template {
        /// An empty workspace
        #[default]
        Blank = "blank",
        /// A customer-onboarding journey: sign up, set up, first value, habit
        Onboarding = "onboarding",
        /// A trial-to-paid journey: discover, start the trial, evaluate, decide
        TrialToPaid = "trial-to-paid",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateKey {
    pub name: String,
    /// The workspace policy's default expiry when absent (required without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<ExpiryPolicy>,
    /// The most the workspace policy allows when absent (read-write without a policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Tool names and groups ([`ToolGroup`]) the key may use; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Journeys (slugs or `jrn_…` ids) the key is confined to; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<Vec<String>>,
    /// Client networks (CIDRs or single addresses) the key may be used from; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip: Option<Vec<String>>,
}

/// `POST …/mcp-keys/{id}/narrow`: what to narrow (what is absent stays as it is).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NarrowKey {
    /// `read-only` takes the write tools away (`read-write` is refused on a read-only key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip: Option<Vec<String>>,
}

/// A page of workspaces by slug; `next_cursor` (absent on the last page) goes back as
/// `?cursor=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspacesResponse {
    pub workspaces: Vec<Workspace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/admin/workspaces/{ws}`: one workspace, looked up by its slug.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceFoundResponse {
    pub workspace: Workspace,
}

/// A key found on the whole server by its id or displayed prefix, and its workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoundKey {
    pub workspace: Workspace,
    pub key: Key,
}

/// `GET /api/admin/mcp-keys?match=`: the keys an id or displayed prefix names, in the
/// workspaces the caller may see, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoundKeysResponse {
    pub keys: Vec<FoundKey>,
}

/// The answer to creating a workspace: the workspace, the template it was made from and what
/// that template wrote into it (all zero for `blank`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceResponse {
    pub workspace: Workspace,
    #[serde(default)]
    pub template: Template,
    #[serde(default)]
    pub contents: ImportCounts,
}

/// The most rows one page of a list holds (`?limit=`).
pub const PAGE_MAX: u32 = 1000;

/// The client name (`clientInfo.name`, and the `User-Agent`'s product) of `custory-mcp test`,
/// the connection check. The server keeps it out of a key's clients: a check before the real
/// client starts does not make a key look shared, nor its first real client look new. It
/// still shows as the key's last client (the key was tested).
pub const CONNECTION_CHECK_CLIENT: &str = "custory-mcp-test";

/// A page of keys; `next_cursor` (absent on the last page) goes back as `?cursor=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysResponse {
    pub keys: Vec<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A journey as keys and the policy name it: its id (what they store), slug and name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JourneyRef {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// A page of the workspace's journeys, archived ones included (`GET …/journeys`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JourneysResponse {
    pub journeys: Vec<JourneyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyResponse {
    pub key: Key,
}

/// `POST /api/admin/mcp-keys/revoke-token`: a token found somewhere, to revoke its key.
#[derive(Serialize, Deserialize)]
pub struct RevokeToken {
    pub token: String,
}

impl std::fmt::Debug for RevokeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevokeToken { token: [redacted] }")
    }
}

/// The key a found token belonged to, now revoked, and its workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedByTokenResponse {
    pub workspace: String,
    pub key: Key,
    /// The key was revoked before this request: nothing was done (revoking is idempotent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_revoked: bool,
}

/// The only response that carries a plaintext token (create and rotate); its `Debug` never
/// shows the token.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedKeyResponse {
    pub key: Key,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Key>,
}

impl std::fmt::Debug for CreatedKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKeyResponse")
            .field("key", &self.key)
            .field("token", &"[redacted]")
            .field("replaced", &self.replaced)
            .finish()
    }
}

/// A page of events, newest first; `next_cursor` (absent on the last page) goes back as
/// `?cursor=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsResponse {
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A member of a workspace, as `members list` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersResponse {
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberResponse {
    pub member: Member,
}

/// `POST /api/admin/workspaces/{ws}/invitations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateInvitation {
    pub name: String,
    pub role: Role,
    /// How long the code may be redeemed (`48h`, `7d`); 7 days when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// An invitation as the server keeps it (never its code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub name: String,
    pub role: Role,
    pub workspace: String,
    pub prefix: String,
    pub expires_at: DateTime<Utc>,
    /// Who issued it, as tables show an actor (a member's name, or `administrator`).
    pub invited_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `GET …/{ws}/invitations`: the invitations still waiting to be redeemed, soonest to expire
/// first (at most [`PENDING_INVITATIONS_MAX`] exist at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationsResponse {
    pub invitations: Vec<Invitation>,
}

/// `POST …/{ws}/invitations/{prefix}/withdraw`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithdrawnInvitationResponse {
    pub invitation: Invitation,
    /// It had been withdrawn before this request (nothing changed).
    pub already_withdrawn: bool,
}

/// How many invitations a workspace may have waiting at once: the list of them has a ceiling
/// without pages, and a script cannot mint codes without end.
pub const PENDING_INVITATIONS_MAX: usize = 100;

/// The only answer that carries an invitation code; its `Debug` never shows the code.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedInvitationResponse {
    pub invitation: Invitation,
    pub code: String,
}

impl std::fmt::Debug for CreatedInvitationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedInvitationResponse")
            .field("invitation", &self.invitation)
            .field("code", &"[redacted]")
            .finish()
    }
}

/// `POST /api/admin/invitations/redeem`.
#[derive(Serialize, Deserialize)]
pub struct RedeemInvitation {
    pub code: String,
}

impl std::fmt::Debug for RedeemInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedeemInvitation { code: [redacted] }")
    }
}

/// The only answer that carries a member credential: who it is for and where. Its `Debug`
/// never shows the credential.
#[derive(Clone, Serialize, Deserialize)]
pub struct RedeemedInvitationResponse {
    pub member: Member,
    pub workspace: String,
    pub credential: String,
}

impl std::fmt::Debug for RedeemedInvitationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemedInvitationResponse")
            .field("member", &self.member)
            .field("workspace", &self.workspace)
            .field("credential", &"[redacted]")
            .finish()
    }
}

/// `POST …/members/{name}/role`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeRole {
    pub role: Role,
}

/// `POST …/members/{name}/remove`: whether their active keys in the workspace are revoked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveMember {
    pub revoke_keys: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemovedMemberResponse {
    pub member: Member,
    /// The keys revoked with them (empty when their keys were kept).
    pub revoked_keys: Vec<Key>,
    /// Whether they lost their last role, and with it their credential.
    pub credential_revoked: bool,
}

/// One workspace a caller has a role in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRole {
    pub workspace: String,
    pub role: Role,
}

/// `GET /api/admin/whoami`: who the credential belongs to, and what it may do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmIResponse {
    /// `administrator` or `member`.
    pub kind: AuthorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A member's roles (empty for the administrator, who may do everything).
    pub roles: Vec<WorkspaceRole>,
}

/// The one error shape of the admin API: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// Each problem with its place, when there are several (an import's validation errors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One problem of a request body: where (a JSON path such as `journeys[0].stages[1].name`, or
/// `line 3` of a CSV) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub path: String,
    pub message: String,
}

/// The answer to `POST /api/admin/imports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResponse {
    pub workspace: String,
    /// The journey a CSV import added (its slug); absent for a workspace document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<String>,
    /// Nothing was written: the import was checked and rolled back.
    pub dry_run: bool,
    #[serde(flatten)]
    pub counts: ImportCounts,
}

/// What an import wrote (or, in a dry run, would write).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportCounts {
    pub journeys: u64,
    pub stages: u64,
    pub steps: u64,
    pub items: u64,
    pub links: u64,
    pub comments: u64,
    pub personas: u64,
}

/// Checks a key or workspace name: 1–100 characters after trimming, no control characters.
/// Returns the trimmed name.
/// A member's email as given (trimmed): one line, at most 254 characters (RFC 5321's limit),
/// an `@` between two non-empty parts. Not checked for delivery: it is shown, never mailed.
pub fn validate_email(raw: &str) -> Result<&str, String> {
    let email = raw.trim();
    let len = email.chars().count();
    if len > 254 {
        return Err(format!("email is {len} characters long; the limit is 254"));
    }
    let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    if !well_formed || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "email {:?} is not an address like ana@example.com",
            displayable(email)
        ));
    }
    Ok(email)
}

pub fn validate_name(raw: &str) -> Result<&str, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    let len = name.chars().count();
    if len > 100 {
        return Err(format!("name is {len} characters long; the limit is 100"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters (newlines, tabs, escapes)".into());
    }
    if name.chars().any(is_bidi_control) {
        return Err("name must not contain bidirectional override or isolate characters \
                    (U+202A-U+202E, U+2066-U+2069): they make a name display as something else"
            .into());
    }
    if let Some(c) = name.chars().find(|&c| is_invisible(c)) {
        return Err(format!(
            "name must not contain invisible characters (here U+{:04X}): two names that look \
             the same must be the same",
            u32::from(c)
        ));
    }
    Ok(name)
}

/// Unicode's bidirectional embeddings, overrides and isolates: invisible characters that make
/// the text after them display reversed or reordered (the "Trojan Source" trick).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show as nothing (zero-width spaces and joiners, word joiners, the byte
/// order mark, soft hyphens, line and paragraph separators, tag characters): two names that
/// differ only by them look the same.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{2029}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// `text` without control, bidirectional formatting and invisible characters, for free text
/// from the network that is later shown to a person (an MCP client's name, anything a server
/// sends the CLI): it cannot move the cursor, recolour the terminal or hide a character.
pub fn displayable(text: &str) -> String {
    text.chars().filter(|&c| shown(c)).collect()
}

/// Whether `c` may reach a terminal (or a one-line record) as it is: not a control character,
/// a bidi control or an invisible one.
pub fn shown(c: char) -> bool {
    !c.is_control() && !is_bidi_control(c) && !is_invisible(c)
}

/// Checks a workspace slug: 1–40 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn validate_slug(slug: &str) -> Result<&str, String> {
    let ok = !slug.is_empty()
        && slug.len() <= 40
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(slug)
    } else {
        Err(format!("slug {slug:?} is not valid: use 1-40 lowercase letters, digits and dashes"))
    }
}

/// A slug made from a name: lowercase ASCII letters and digits, other runs become one dash.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() { "workspace".to_owned() } else { slug }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carrying_a_secret_never_show_it_in_debug() {
        let invited: CreatedInvitationResponse = serde_json::from_value(serde_json::json!({
            "invitation": {"name": "Ivy", "role": "viewer", "workspace": "acme",
                           "prefix": "csi_abcdefgh", "expires_at": "2026-12-14T00:00:00Z",
                           "invited_by": "administrator", "created_at": "2026-12-07T00:00:00Z"},
            "code": "csi_abcdefghSECRETSECRETSECRET",
        }))
        .expect("invitation");
        let redeemed: RedeemedInvitationResponse = serde_json::from_value(serde_json::json!({
            "member": {"id": "mem_1", "name": "Ivy", "role": "viewer",
                       "created_at": "2026-12-07T00:00:00Z"},
            "workspace": "acme",
            "credential": "csm_abcdefghSECRETSECRETSECRET",
        }))
        .expect("redeemed");
        for shown in [format!("{invited:?}"), format!("{redeemed:?}")] {
            assert!(!shown.contains("SECRET") && shown.contains("[redacted]"), "{shown}");
        }
    }

    #[test]
    fn a_webhook_secret_never_shows_in_debug() {
        let created: CreatedWebhookResponse = serde_json::from_value(serde_json::json!({
            "webhook": {"id": "whk_1", "url": "https://example.com/in", "events": [],
                        "format": "standard", "created_at": "2026-12-07T00:00:00Z",
                        "created_by": "administrator"},
            "secret": "whsec_SECRETSECRETSECRET",
        }))
        .expect("webhook");
        let shown = format!("{created:?}");
        assert!(!shown.contains("SECRET") && shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn emails_are_one_bounded_address() {
        assert_eq!(validate_email(" ana@example.com "), Ok("ana@example.com"));
        for bad in ["ana", "@example.com", "ana@", "a b@example.com", "a@b@c", "a\n@b"] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(validate_name("  Cursor on MacBook "), Ok("Cursor on MacBook"));
        assert!(validate_name("   ").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("Cursor\u{202e}txt.exe").is_err());
        for invisible in ["Cur\u{200b}sor", "Cur\u{2028}sor", "\u{feff}Cursor", "Cur\u{2060}sor"] {
            assert!(validate_name(invisible).is_err(), "{invisible:?}");
        }
        assert_eq!(displayable("a\u{200b}b\u{feff}"), "ab");
        assert_eq!(displayable("Cursor\u{202e}gnp\u{1b}[2J"), "Cursorgnp[2J");
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert_eq!(validate_name(&"é".repeat(100)).map(str::len), Ok(200));
    }

    /// Each closed set reads and writes the same names on the command line and on the wire,
    /// and refuses anything else with a sentence listing them.
    #[test]
    fn closed_sets_are_spelled_once() {
        fn check<T>(all: &[T], names: &[&str])
        where
            T: clap::ValueEnum + Serialize + serde::de::DeserializeOwned + std::fmt::Display,
            T: Copy + PartialEq + std::fmt::Debug,
        {
            assert_eq!(T::value_variants(), all, "every value, in order");
            for (&value, &name) in all.iter().zip(names) {
                let clap = value.to_possible_value().expect("a name");
                assert_eq!(clap.get_name(), name);
                assert_eq!(value.to_string(), name);
                assert_eq!(serde_json::to_value(value).expect("serialize"), name);
                assert_eq!(serde_json::from_value::<T>(name.into()).expect("deserialize"), value);
            }
        }
        // The wire's spellings: snapshots and scripts hold them.
        check(&ExpiryPolicy::ALL, &["30d", "90d", "never"]);
        check(&Access::ALL, &["read-write", "read-only"]);
        check(&KeyStatus::ALL, &["active", "expired", "revoked"]);
        check(&Template::ALL, &["blank", "onboarding", "trial-to-paid"]);
        check(&Role::ALL, &["owner", "editor", "viewer"]);
        check(
            &AuthorKind::ALL,
            &["administrator", "member", "consent", "key", "leak-report", "server"],
        );

        let refused = |value| serde_json::from_value::<ExpiryPolicy>(value).expect_err("refused");
        assert_eq!(refused("7d".into()).to_string(), "\"7d\" is not one of 30d, 90d, never");
        assert_eq!(refused(30.into()).to_string(), "30 is not one of 30d, 90d, never");
        assert_eq!(Access::default(), Access::ReadWrite);
        assert_eq!(Template::default(), Template::Blank);
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Acme Labs, Inc."), "acme-labs-inc");
        assert_eq!(slugify("日本"), "workspace");
        assert!(validate_slug("acme-2").is_ok());
        assert!(validate_slug("Acme").is_err());
        assert!(validate_slug("-a").is_err());
    }
}

// Webhooks (issue 35) ---------------------------------------------------------------------------

closed_set! {
    /// What a webhook endpoint can be sent: the audit events that go out, and the test event.
    pub enum WebhookEvent {
        KeyCreated = "key.created",
        KeyRotated = "key.rotated",
        KeyRevoked = "key.revoked",
        /// 30, 7 and 1 days before a key expires
        KeyExpiring = "key.expiring",
        KeyExpired = "key.expired",
        /// Less access or fewer scopes (`keys narrow`)
        KeyNarrowed = "key.narrowed",
        /// A key used from a new address or by a new client
        KeyNewOrigin = "key.new_origin",
        MemberInvited = "member.invited",
        MemberInvitationWithdrawn = "member.invitation_withdrawn",
        MemberJoined = "member.joined",
        MemberRoleChanged = "member.role_changed",
        MemberRemoved = "member.removed",
        PolicyChanged = "policy.changed",
        KeyBlocked = "key.blocked",
        /// A member's credential reported as leaked
        MemberCredentialRevoked = "member.credential_revoked",
        WorkspaceImported = "workspace.imported",
        JourneyImported = "journey.imported",
        WorkspaceExported = "workspace.exported",
        /// Another endpoint added (or removed); who did it: `data.actor`
        WebhookAdded = "webhook.added",
        WebhookRemoved = "webhook.removed",
        /// Sent by `webhooks test` only.
        Test = "webhook.test",
    }
}

impl WebhookEvent {
    /// The webhook event an audit event goes out as, if it goes out.
    pub fn of(kind: EventKind) -> Option<Self> {
        Some(match kind {
            EventKind::KeyCreated => Self::KeyCreated,
            EventKind::KeyRotated => Self::KeyRotated,
            EventKind::KeyRevoked => Self::KeyRevoked,
            EventKind::KeyExpiring => Self::KeyExpiring,
            EventKind::KeyExpired => Self::KeyExpired,
            EventKind::KeyNarrowed => Self::KeyNarrowed,
            EventKind::KeyNewOrigin => Self::KeyNewOrigin,
            EventKind::MemberInvited => Self::MemberInvited,
            EventKind::MemberInvitationWithdrawn => Self::MemberInvitationWithdrawn,
            EventKind::MemberJoined => Self::MemberJoined,
            EventKind::MemberRoleChanged => Self::MemberRoleChanged,
            EventKind::MemberRemoved => Self::MemberRemoved,
            EventKind::PolicyChanged => Self::PolicyChanged,
            EventKind::KeyBlocked => Self::KeyBlocked,
            EventKind::MemberCredentialRevoked => Self::MemberCredentialRevoked,
            EventKind::WorkspaceImported => Self::WorkspaceImported,
            EventKind::JourneyImported => Self::JourneyImported,
            EventKind::WorkspaceExported => Self::WorkspaceExported,
            EventKind::WebhookAdded => Self::WebhookAdded,
            EventKind::WebhookRemoved => Self::WebhookRemoved,
            _ => return None,
        })
    }
}

closed_set! {
    /// How deliveries are written.
    pub enum WebhookFormat {
        /// Standard Webhooks JSON, signed (`webhook-id`, `webhook-timestamp`,
        /// `webhook-signature`)
        Standard = "standard",
        /// A readable message, `{"text": …}`, for a Slack-compatible incoming webhook (not
        /// signed: the URL itself is the receiver's secret)
        Slack = "slack",
    }
}

/// A webhook endpoint of a workspace (its secret is never part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// What it is sent; every event when empty.
    pub events: Vec<WebhookEvent>,
    pub format: WebhookFormat,
    pub created_at: DateTime<Utc>,
    /// Who added it (a member's name, or `administrator`).
    pub created_by: String,
    /// Its deliveries neither delivered nor given up yet.
    #[serde(default)]
    pub pending: i64,
    /// Its deliveries given up unsent because it had more pending than the outbox keeps
    /// for one endpoint (the oldest go first; see `webhooks deliveries`).
    #[serde(default)]
    pub dropped: i64,
}

/// An endpoint's signing secret (`whsec_…`): shown once, at creation. Its Debug says nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// `POST …/webhooks`: the endpoint, and its secret (the only time it is shown).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedWebhookResponse {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// `GET …/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhooksResponse {
    pub webhooks: Vec<Webhook>,
}

/// One event to one endpoint, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook_id: String,
    /// The `webhook-id` header: the same at every attempt.
    pub event_id: String,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    /// `pending`, `delivered` or `failed` (given up: a day after the event, or a test that failed once).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// `GET …/webhook-deliveries`: the most recent first, a page at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookDeliveriesResponse {
    pub deliveries: Vec<WebhookDelivery>,
    /// Where the next page starts (`?cursor=`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

// The workspace policy (issue 34) ---------------------------------------------------------------

closed_set! {
    /// A rule of a workspace's key policy: what `policy set --clear` takes, and what a refused
    /// or blocked key is said to break.
    pub enum PolicyRule {
        /// The longest expiry a key may have
        MaxExpiry = "max-expiry",
        /// The expiry a key gets when none is asked for
        DefaultExpiry = "default-expiry",
        /// The most access a key may have (read-only: no key may write)
        Access = "access",
        /// The tools a key may be limited to, at most
        Tools = "tools",
        /// The journeys a key must be confined to (a subset of these)
        Journeys = "journeys",
        /// The networks a key must be limited to (`--allow-ip` within these)
        Addresses = "addresses",
        /// Keys unused this long are revoked by the server
        RevokeUnused = "revoke-unused",
    }
}

impl PolicyRule {
    /// The error code of a refusal by this rule (`policy_max_expiry`…).
    pub fn code(self) -> &'static str {
        match self {
            Self::MaxExpiry => "policy_max_expiry",
            Self::DefaultExpiry => "policy_default_expiry",
            Self::Access => "policy_access",
            Self::Tools => "policy_tools",
            Self::Journeys => "policy_journeys",
            Self::Addresses => "policy_addresses",
            Self::RevokeUnused => "policy_revoke_unused",
        }
    }
}

closed_set! {
    /// How long a key may go unused (since its last use, or its creation) before the server
    /// revokes it.
    pub enum UnusedPeriod {
        Days30 = "30d",
        Days90 = "90d",
    }
}

impl UnusedPeriod {
    pub fn days(self) -> i64 {
        match self {
            Self::Days30 => 30,
            Self::Days90 => 90,
        }
    }
}

/// A workspace's key policy: the rules every key made there keeps. Each rule absent means none.
/// A key made after a rule is refused if it breaks it; a key made before is blocked (refused
/// with 403) until it is rotated or the rule changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expiry: Option<ExpiryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_expiry: Option<ExpiryPolicy>,
    /// `read-only`: every key must be read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Tool names (groups expanded): every key must be limited to some of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Journeys (`jrn_…`): every key must be confined to some of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<Vec<String>>,
    /// Networks (CIDRs): every key must be limited to networks inside these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_unused_after: Option<UnusedPeriod>,
}

/// How a key breaks a policy: the rule, and a sentence saying what the rule allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    pub rule: PolicyRule,
    pub message: String,
}

/// The rank of an expiry: longer is greater (`never` the greatest).
fn expiry_rank(expiry: ExpiryPolicy) -> i64 {
    expiry.days().unwrap_or(i64::MAX)
}

/// Whether the CIDR `net` lies inside one of `within` (a value that does not parse: no).
fn net_inside(net: &str, within: &[String]) -> bool {
    net.parse::<ipnet::IpNet>().is_ok_and(|net| {
        within.iter().filter_map(|w| w.parse::<ipnet::IpNet>().ok()).any(|w| w.contains(&net))
    })
}

impl Policy {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The value of `rule`, for a person (`none` when unset).
    pub fn describe(&self, rule: PolicyRule) -> String {
        let list = |list: &Option<Vec<String>>| list.as_ref().map(|l| l.join(", "));
        match rule {
            PolicyRule::MaxExpiry => self.max_expiry.map(|e| e.as_str().to_owned()),
            PolicyRule::DefaultExpiry => self.default_expiry.map(|e| e.as_str().to_owned()),
            PolicyRule::Access => self.access.map(|a| a.as_str().to_owned()),
            PolicyRule::Tools => list(&self.tools),
            PolicyRule::Journeys => list(&self.journeys),
            PolicyRule::Addresses => list(&self.allow_ip),
            PolicyRule::RevokeUnused => self.revoke_unused_after.map(|p| p.as_str().to_owned()),
        }
        .unwrap_or_else(|| "none".to_owned())
    }

    /// Takes the rule away.
    pub fn clear(&mut self, rule: PolicyRule) {
        match rule {
            PolicyRule::MaxExpiry => self.max_expiry = None,
            PolicyRule::DefaultExpiry => self.default_expiry = None,
            PolicyRule::Access => self.access = None,
            PolicyRule::Tools => self.tools = None,
            PolicyRule::Journeys => self.journeys = None,
            PolicyRule::Addresses => self.allow_ip = None,
            PolicyRule::RevokeUnused => self.revoke_unused_after = None,
        }
    }

    /// The expiries a key may have, shortest first.
    pub fn allowed_expiries(&self) -> Vec<ExpiryPolicy> {
        ExpiryPolicy::ALL
            .into_iter()
            .filter(|e| self.max_expiry.is_none_or(|max| expiry_rank(*e) <= expiry_rank(max)))
            .collect()
    }

    /// The accesses a key may have.
    pub fn allowed_accesses(&self) -> Vec<Access> {
        Access::ALL
            .into_iter()
            .filter(|a| self.access.is_none_or(|max| max == Access::ReadWrite || *a == max))
            .collect()
    }

    /// What a key asked for with some terms left out gets: the default expiry (else the
    /// longest allowed, if `never` is not), and the widest access and scopes the policy allows.
    pub fn fill(
        &self,
        expires: Option<ExpiryPolicy>,
        access: Option<Access>,
        scopes: KeyScopes,
    ) -> (Option<ExpiryPolicy>, Access, KeyScopes) {
        let expires = expires
            .or(self.default_expiry)
            .or_else(|| self.max_expiry.filter(|max| *max != ExpiryPolicy::Never));
        let access = access.or(self.access).unwrap_or_default();
        let scopes = KeyScopes {
            tools: scopes.tools.or_else(|| self.tools.clone()),
            journeys: scopes.journeys.or_else(|| self.journeys.clone()),
            allow_ip: scopes.allow_ip.or_else(|| self.allow_ip.clone()),
        };
        (expires, access, scopes)
    }

    /// The first rule a key on these terms breaks, saying what the rule allows.
    pub fn check(
        &self,
        expires: ExpiryPolicy,
        access: Access,
        scopes: &KeyScopes,
    ) -> Result<(), Breach> {
        let breach = |rule: PolicyRule, message: String| Err(Breach { rule, message });
        if let Some(max) = self.max_expiry
            && expiry_rank(expires) > expiry_rank(max)
        {
            let allowed: Vec<&str> = self.allowed_expiries().iter().map(|e| e.as_str()).collect();
            return breach(
                PolicyRule::MaxExpiry,
                format!(
                    "the workspace policy allows keys that expire after {} at most, not {}: \
                     use --expires {}",
                    max.lifetime(),
                    expires.lifetime(),
                    allowed.join("|")
                ),
            );
        }
        if self.access == Some(Access::ReadOnly) && access == Access::ReadWrite {
            return breach(
                PolicyRule::Access,
                "the workspace policy allows read-only keys only: use --read-only".into(),
            );
        }
        let subset = |rule: PolicyRule,
                      flag: &str,
                      allowed: &Option<Vec<String>>,
                      asked: &Option<Vec<String>>| {
            let Some(allowed) = allowed else { return Ok(()) };
            let what = rule.as_str();
            match asked {
                None => breach(
                    rule,
                    format!(
                        "the workspace policy allows keys limited to these {what} only: use \
                         {flag} {} (or some of them)",
                        allowed.join(",")
                    ),
                ),
                Some(asked) => match asked.iter().find(|a| !allowed.contains(a)) {
                    Some(extra) => breach(
                        rule,
                        format!(
                            "the workspace policy does not allow {extra} among a key's {what}: \
                             use {flag} with some of {}",
                            allowed.join(",")
                        ),
                    ),
                    None => Ok(()),
                },
            }
        };
        subset(PolicyRule::Tools, "--tools", &self.tools, &scopes.tools)?;
        subset(PolicyRule::Journeys, "--journeys", &self.journeys, &scopes.journeys)?;
        if let Some(allowed) = &self.allow_ip {
            let outside = match &scopes.allow_ip {
                None => Some("any address".to_owned()),
                Some(nets) => nets.iter().find(|net| !net_inside(net, allowed)).cloned(),
            };
            if let Some(outside) = outside {
                return breach(
                    PolicyRule::Addresses,
                    format!(
                        "the workspace policy allows keys limited to addresses within {} only, \
                         not {outside}: use --allow-ip {} (or networks inside them)",
                        allowed.join(","),
                        allowed.join(",")
                    ),
                );
            }
        }
        Ok(())
    }

    /// Terms like `expires`, `access` and `scopes` narrowed to what the policy allows (what a
    /// rotation makes of a key a newer policy blocks): the shorter expiry, read-only if it must
    /// be, the tools and journeys both allow, the networks inside both. An error when nothing
    /// would be left of a limit (no tool, journey or network in common).
    pub fn conform(
        &self,
        expires: ExpiryPolicy,
        access: Access,
        scopes: &KeyScopes,
    ) -> Result<(ExpiryPolicy, Access, KeyScopes), Breach> {
        let expires = match self.max_expiry {
            Some(max) if expiry_rank(expires) > expiry_rank(max) => max,
            _ => expires,
        };
        let access = if self.access == Some(Access::ReadOnly) { Access::ReadOnly } else { access };
        let both = |rule: PolicyRule,
                    allowed: &Option<Vec<String>>,
                    had: &Option<Vec<String>>|
         -> Result<Option<Vec<String>>, Breach> {
            let Some(allowed) = allowed else { return Ok(had.clone()) };
            let Some(had) = had else { return Ok(Some(allowed.clone())) };
            let kept: Vec<String> = had.iter().filter(|h| allowed.contains(h)).cloned().collect();
            if kept.is_empty() {
                return Err(Breach {
                    rule,
                    message: format!(
                        "none of the key's {} ({}) is allowed by the workspace policy ({}): \
                         make a new key (custory-mcp keys create)",
                        rule.as_str(),
                        had.join(","),
                        allowed.join(",")
                    ),
                });
            }
            Ok(Some(kept))
        };
        let tools = both(PolicyRule::Tools, &self.tools, &scopes.tools)?;
        let journeys = both(PolicyRule::Journeys, &self.journeys, &scopes.journeys)?;
        // CIDRs are nested or apart: what both allow is each one inside one of the other's.
        let allow_ip = match (&self.allow_ip, &scopes.allow_ip) {
            (None, had) => had.clone(),
            (Some(allowed), None) => Some(allowed.clone()),
            (Some(allowed), Some(had)) => {
                let mut kept: Vec<String> =
                    had.iter().filter(|net| net_inside(net, allowed)).cloned().collect();
                let inner: Vec<String> = allowed
                    .iter()
                    .filter(|net| net_inside(net, had) && !kept.contains(net))
                    .cloned()
                    .collect();
                kept.extend(inner);
                if kept.is_empty() {
                    return Err(Breach {
                        rule: PolicyRule::Addresses,
                        message: format!(
                            "none of the key's networks ({}) is within the workspace policy's \
                             ({}): make a new key (custory-mcp keys create)",
                            had.join(","),
                            allowed.join(",")
                        ),
                    });
                }
                Some(kept)
            }
        };
        Ok((expires, access, KeyScopes { tools, journeys, allow_ip }))
    }
}

/// `GET …/policy`: the workspace's policy, and who changed it last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyResponse {
    pub workspace: String,
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<Author>,
}

/// `POST …/policy`: the rules to set (absent: as they are) and the rules to clear.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expiry: Option<ExpiryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_expiry: Option<ExpiryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Tool names and groups ([`ToolGroup`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Journeys, by slug or `jrn_…` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<Vec<String>>,
    /// Networks (CIDRs or single addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_unused_after: Option<UnusedPeriod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear: Vec<PolicyRule>,
}

/// One rule a `policy set` changed: its value before and after, for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    pub rule: PolicyRule,
    pub from: String,
    pub to: String,
}

/// `POST …/policy`: the policy now, what changed, and how many active keys it blocks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPolicyResponse {
    pub workspace: String,
    pub policy: Policy,
    pub changes: Vec<PolicyChange>,
    /// Active keys that break the policy now (blocked until rotated), the first 100.
    #[serde(default)]
    pub blocked: Vec<Key>,
    /// How many active keys it blocks in all.
    #[serde(default)]
    pub blocked_total: usize,
}
