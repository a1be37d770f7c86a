//! The demo workspace a new database starts with, so the MCP tools have real context to serve:
//! Acme Analytics, a B2B product-analytics SaaS, with a trial-to-paid and a support-escalation
//! journey. The data goes through the same inserts, and the same checks (statuses, fields, link
//! directions), as the MCP write tools.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::map::renumber_map;
use super::model::{ItemKind, NewItem, NewPersona};
use super::writes::{
    insert_comment, insert_item, insert_journey, insert_link, insert_persona, insert_stage,
    insert_step,
};
use super::{Store, StoreError, StoreResult};

struct Journey {
    slug: &'static str,
    name: &'static str,
    description: &'static str,
    stages: &'static [Stage],
}

struct Stage {
    name: &'static str,
    description: &'static str,
    steps: &'static [Step],
}

/// A step; `key` is how [`ITEMS`] refer to it.
struct Step {
    key: &'static str,
    name: &'static str,
    description: &'static str,
}

/// An item; `key` is how [`LINKS`] and [`COMMENTS`] refer to it.
struct Item {
    key: &'static str,
    step: &'static str,
    kind: ItemKind,
    title: &'static str,
    description: &'static str,
    status: &'static str,
    owner: &'static str,
    fields: &'static [(&'static str, Field)],
}

enum Field {
    Text(&'static str),
    Int(i64),
    Decimal(f64),
}

struct Comment {
    item: &'static str,
    author: &'static str,
    body: &'static str,
}

const JOURNEYS: &[Journey] = &[
    Journey {
        slug: "trial-to-paid",
        name: "Trial to paid",
        description: "How a data team finds Acme, runs the 14-day trial and decides to pay.",
        stages: &[
            Stage {
                name: "Discover",
                description: "The team shortlists product-analytics tools.",
                steps: &[
                    Step {
                        key: "compare",
                        name: "Compares analytics tools",
                        description: "Reads comparison pages and G2 reviews while building a \
                                      shortlist.",
                    },
                    Step {
                        key: "pricing",
                        name: "Visits the pricing page",
                        description: "Checks whether event-based pricing fits their monthly \
                                      volume.",
                    },
                ],
            },
            Stage {
                name: "Sign up",
                description: "A trial workspace is created and the team is invited.",
                steps: &[
                    Step {
                        key: "signup",
                        name: "Creates a trial workspace",
                        description: "Signs up with a work email and names the workspace.",
                    },
                    Step {
                        key: "invite",
                        name: "Invites teammates",
                        description: "Invites an engineer to help install the tracking SDK.",
                    },
                ],
            },
            Stage {
                name: "Activate",
                description: "Real product data flows in and the first answers come out.",
                steps: &[
                    Step {
                        key: "install",
                        name: "Installs the tracking SDK",
                        description: "Adds the JavaScript or server SDK and sends a first event.",
                    },
                    Step {
                        key: "warehouse",
                        name: "Connects the data warehouse",
                        description: "Syncs accounts and billing data from Snowflake or \
                                      BigQuery.",
                    },
                    Step {
                        key: "dashboard",
                        name: "Builds the first dashboard",
                        description: "Charts signups, activation and retention for the weekly \
                                      product review.",
                    },
                ],
            },
            Stage {
                name: "Convert",
                description: "The trial ends and the team chooses a plan.",
                steps: &[
                    Step {
                        key: "review",
                        name: "Reviews usage before the trial ends",
                        description: "The admin checks event volume and who used Acme during \
                                      the trial.",
                    },
                    Step {
                        key: "upgrade",
                        name: "Upgrades to a paid plan",
                        description: "Picks the Growth or Business plan and enters billing \
                                      details.",
                    },
                ],
            },
        ],
    },
    Journey {
        slug: "support-escalation",
        name: "Support escalation",
        description: "What happens when a paying customer hits a data problem they cannot fix \
                      alone.",
        stages: &[
            Stage {
                name: "Report",
                description: "The customer tells us something is wrong.",
                steps: &[
                    Step {
                        key: "ticket",
                        name: "Opens a support ticket",
                        description: "Reports missing or wrong numbers from the in-app chat.",
                    },
                    Step {
                        key: "first-response",
                        name: "Gets a first response",
                        description: "Support acknowledges the issue and asks for details.",
                    },
                ],
            },
            Stage {
                name: "Resolve",
                description: "The problem is found, fixed and confirmed.",
                steps: &[
                    Step {
                        key: "escalate",
                        name: "Escalated to engineering",
                        description: "Support hands a pipeline problem to the on-call \
                                      engineer.",
                    },
                    Step {
                        key: "confirm",
                        name: "Confirms the fix",
                        description: "The customer checks the backfilled numbers and closes \
                                      the ticket.",
                    },
                ],
            },
        ],
    },
];

// Owners: Maya Chen (product marketing), Leo Park (engineering), Priya Nair (product),
// Sofia Alvarez (support).
const ITEMS: &[Item] = &[
    // Touchpoints
    Item {
        key: "pricing-page",
        step: "pricing",
        kind: ItemKind::Touchpoint,
        title: "Pricing page",
        description: "Public pricing page with plan comparison and the monthly event allowance \
                      of each plan.",
        status: "validated",
        owner: "Maya Chen",
        fields: &[("channel", Field::Text("web")), ("actor", Field::Text("Prospect"))],
    },
    Item {
        key: "install-guide",
        step: "install",
        kind: ItemKind::Touchpoint,
        title: "SDK install guide",
        description: "Docs page walking an engineer through installing the SDK and sending a \
                      test event.",
        status: "validated",
        owner: "Leo Park",
        fields: &[("channel", Field::Text("docs")), ("actor", Field::Text("Engineer"))],
    },
    Item {
        key: "checklist",
        step: "dashboard",
        kind: ItemKind::Touchpoint,
        title: "Onboarding checklist",
        description: "In-app checklist: send an event, invite a teammate, build a dashboard.",
        status: "validated",
        owner: "Priya Nair",
        fields: &[("channel", Field::Text("in-app")), ("actor", Field::Text("Data lead"))],
    },
    Item {
        key: "trial-email",
        step: "review",
        kind: ItemKind::Touchpoint,
        title: "Trial-ending email",
        description: "Email three days before the trial ends, with a usage recap and a link to \
                      plans.",
        status: "draft",
        owner: "Maya Chen",
        fields: &[("channel", Field::Text("email")), ("actor", Field::Text("Trial admin"))],
    },
    Item {
        key: "support-chat",
        step: "ticket",
        kind: ItemKind::Touchpoint,
        title: "Support chat widget",
        description: "Intercom chat inside the app, staffed 8am–6pm CET on weekdays.",
        status: "validated",
        owner: "Sofia Alvarez",
        fields: &[
            ("channel", Field::Text("in-app chat")),
            ("actor", Field::Text("Customer admin")),
        ],
    },
    // Insights
    Item {
        key: "sdk-stall",
        step: "install",
        kind: ItemKind::Insight,
        title: "Engineers stall on SDK install without a sample event",
        description: "38% of trial workspaces never send a first event. Session recordings \
                      show most drop off at step 3 of the install guide, where they must \
                      pick an event to track.",
        status: "validated",
        owner: "Leo Park",
        fields: &[
            ("type", Field::Text("behavioral")),
            ("confidence", Field::Text("high")),
            ("severity", Field::Text("high")),
            ("segment", Field::Text("Teams without a dedicated data engineer")),
        ],
    },
    Item {
        key: "volume-unknown",
        step: "pricing",
        kind: ItemKind::Insight,
        title: "Prospects cannot estimate their event volume",
        description: "In 9 of 14 sales calls this quarter, prospects asked how many events they \
                      would send per month before agreeing to start a trial.",
        status: "validated",
        owner: "Maya Chen",
        fields: &[
            ("type", Field::Text("sales calls")),
            ("confidence", Field::Text("medium")),
            ("severity", Field::Text("medium")),
            ("segment", Field::Text("Series A startups")),
        ],
    },
    Item {
        key: "dashboard-week-one",
        step: "dashboard",
        kind: ItemKind::Insight,
        title: "Trials with a dashboard in week one convert 3x more",
        description: "Cohort analysis of the last 400 trials: 24% of workspaces that built a \
                      dashboard in their first 7 days converted, against 8% of the rest.",
        status: "validated",
        owner: "Priya Nair",
        fields: &[
            ("type", Field::Text("analytics")),
            ("confidence", Field::Text("high")),
            ("severity", Field::Text("high")),
            ("segment", Field::Text("All trials")),
        ],
    },
    Item {
        key: "warehouse-allowlist",
        step: "warehouse",
        kind: ItemKind::Insight,
        title: "Warehouse connection fails behind IP allow-lists",
        description: "Enterprise trials on Snowflake often restrict network access; the \
                      connection test fails with a timeout that does not say why.",
        status: "draft",
        owner: "Sofia Alvarez",
        fields: &[
            ("type", Field::Text("support tickets")),
            ("confidence", Field::Text("medium")),
            ("severity", Field::Text("high")),
            ("segment", Field::Text("Enterprise trials on Snowflake")),
        ],
    },
    Item {
        key: "slow-response",
        step: "first-response",
        kind: ItemKind::Insight,
        title: "Data-issue tickets wait 9 hours for a first response",
        description: "Tickets about missing or wrong numbers sit in the general queue; the \
                      median first response is 9 hours, against 2 hours for billing tickets.",
        status: "validated",
        owner: "Sofia Alvarez",
        fields: &[
            ("type", Field::Text("support analytics")),
            ("confidence", Field::Text("high")),
            ("severity", Field::Text("medium")),
            ("segment", Field::Text("Growth plan customers")),
        ],
    },
    // Opportunities
    Item {
        key: "data-before-sdk",
        step: "install",
        kind: ItemKind::Opportunity,
        title: "Let trials see data before the SDK is installed",
        description: "Offer a sample dataset and a one-line snippet so the first dashboard does \
                      not wait on engineering time.",
        status: "in-progress",
        owner: "Priya Nair",
        fields: &[
            ("impact", Field::Text("high")),
            ("effort", Field::Text("medium")),
            ("priority", Field::Text("P1")),
            ("confidence", Field::Text("medium")),
        ],
    },
    Item {
        key: "predictable-pricing",
        step: "pricing",
        kind: ItemKind::Opportunity,
        title: "Make event-based pricing predictable",
        description: "Help prospects size their plan before the trial, so pricing is not a \
                      reason to wait.",
        status: "open",
        owner: "Maya Chen",
        fields: &[
            ("impact", Field::Text("medium")),
            ("effort", Field::Text("low")),
            ("priority", Field::Text("P2")),
            ("confidence", Field::Text("medium")),
        ],
    },
    Item {
        key: "route-pipeline-tickets",
        step: "escalate",
        kind: ItemKind::Opportunity,
        title: "Route data-pipeline tickets straight to engineering",
        description: "Recognise pipeline problems at intake and skip the general queue.",
        status: "open",
        owner: "Sofia Alvarez",
        fields: &[
            ("impact", Field::Text("medium")),
            ("effort", Field::Text("medium")),
            ("priority", Field::Text("P2")),
            ("confidence", Field::Text("high")),
        ],
    },
    // Solutions
    Item {
        key: "sample-dataset",
        step: "install",
        kind: ItemKind::Solution,
        title: "Sample dataset in new workspaces",
        description: "Pre-load 30 days of realistic demo events, clearly labelled, and hide \
                      them once real events arrive.",
        status: "building",
        owner: "Leo Park",
        fields: &[
            ("solution_type", Field::Text("feature")),
            ("impact", Field::Text("high")),
            ("effort", Field::Text("low")),
            ("priority", Field::Text("P1")),
            ("target_date", Field::Text("2026-07-15")),
        ],
    },
    Item {
        key: "volume-calculator",
        step: "pricing",
        kind: ItemKind::Solution,
        title: "Event volume calculator on the pricing page",
        description: "Estimate monthly events from monthly active users and tracked actions, \
                      and suggest a plan.",
        status: "planned",
        owner: "Maya Chen",
        fields: &[
            ("solution_type", Field::Text("experiment")),
            ("impact", Field::Text("medium")),
            ("effort", Field::Text("low")),
            ("priority", Field::Text("P2")),
            ("target_date", Field::Text("2026-06-30")),
        ],
    },
    Item {
        key: "auto-tag",
        step: "escalate",
        kind: ItemKind::Solution,
        title: "Auto-tag pipeline tickets for on-call",
        description: "Tag tickets that mention missing events, delays or sync errors and page \
                      the on-call data engineer.",
        status: "idea",
        owner: "Sofia Alvarez",
        fields: &[
            ("solution_type", Field::Text("process")),
            ("impact", Field::Text("medium")),
            ("effort", Field::Text("low")),
            ("priority", Field::Text("P2")),
            ("target_date", Field::Text("2026-08-01")),
        ],
    },
    // Metrics
    Item {
        key: "conversion",
        step: "upgrade",
        kind: ItemKind::Metric,
        title: "Trial-to-paid conversion",
        description: "Share of trial workspaces that start a paid plan within 30 days of \
                      signing up.",
        status: "at-risk",
        owner: "Maya Chen",
        fields: &[
            ("metric_type", Field::Text("conversion rate")),
            ("unit", Field::Text("%")),
            ("baseline", Field::Decimal(8.5)),
            ("current", Field::Decimal(9.8)),
            ("target", Field::Int(12)),
            ("direction", Field::Text("increase")),
        ],
    },
    Item {
        key: "time-to-first-event",
        step: "install",
        kind: ItemKind::Metric,
        title: "Time to first event",
        description: "Median time from workspace creation to the first tracked event.",
        status: "at-risk",
        owner: "Leo Park",
        fields: &[
            ("metric_type", Field::Text("duration")),
            ("unit", Field::Text("hours")),
            ("baseline", Field::Int(30)),
            ("current", Field::Int(22)),
            ("target", Field::Int(4)),
            ("direction", Field::Text("decrease")),
        ],
    },
    Item {
        key: "week-one-dashboards",
        step: "dashboard",
        kind: ItemKind::Metric,
        title: "Week-one dashboard rate",
        description: "Share of trial workspaces that build a dashboard in their first 7 days.",
        status: "on-track",
        owner: "Priya Nair",
        fields: &[
            ("metric_type", Field::Text("activation rate")),
            ("unit", Field::Text("%")),
            ("baseline", Field::Int(31)),
            ("current", Field::Int(36)),
            ("target", Field::Int(50)),
            ("direction", Field::Text("increase")),
        ],
    },
    Item {
        key: "first-response-time",
        step: "first-response",
        kind: ItemKind::Metric,
        title: "Median first response time",
        description: "Median time to the first human reply on data-issue tickets.",
        status: "tracking",
        owner: "Sofia Alvarez",
        fields: &[
            ("metric_type", Field::Text("duration")),
            ("unit", Field::Text("hours")),
            ("baseline", Field::Int(9)),
            ("current", Field::Int(9)),
            ("target", Field::Int(2)),
            ("direction", Field::Text("decrease")),
        ],
    },
];

/// Cause → effect, by item key; only the allowed directions (the insert checks).
const LINKS: &[(&str, &str)] = &[
    ("install-guide", "sdk-stall"),
    ("pricing-page", "volume-unknown"),
    ("checklist", "dashboard-week-one"),
    ("support-chat", "slow-response"),
    ("sdk-stall", "data-before-sdk"),
    ("dashboard-week-one", "data-before-sdk"),
    ("volume-unknown", "predictable-pricing"),
    ("slow-response", "route-pipeline-tickets"),
    ("data-before-sdk", "sample-dataset"),
    ("predictable-pricing", "volume-calculator"),
    ("route-pipeline-tickets", "auto-tag"),
    ("data-before-sdk", "time-to-first-event"),
    ("data-before-sdk", "week-one-dashboards"),
    ("predictable-pricing", "conversion"),
    ("route-pipeline-tickets", "first-response-time"),
    ("sample-dataset", "time-to-first-event"),
    ("volume-calculator", "conversion"),
    ("auto-tag", "first-response-time"),
];

const COMMENTS: &[Comment] = &[
    Comment {
        item: "data-before-sdk",
        author: "Priya Nair",
        body: "Sales says a sample dataset is the most common ask from trials without an \
               engineer. Can we ship it before the July pricing change?",
    },
    Comment {
        item: "sample-dataset",
        author: "Leo Park",
        body: "The event generator is done. Remaining work: hide the sample events once real \
               events arrive, and label every chart that still uses them.",
    },
    Comment {
        item: "warehouse-allowlist",
        author: "Sofia Alvarez",
        body: "Three Snowflake trials hit this last week. Publishing our egress IPs in the docs \
               would unblock most of them.",
    },
];

const PERSONAS: &[NewPersona<'static>] = &[
    NewPersona {
        name: "Dana Whitfield",
        role: "Head of Data",
        bio: "Leads a three-person data team at a 200-person B2B SaaS company. Owns the \
              warehouse and every dashboard leadership reads.",
        job_to_be_done: "Give product and leadership trustworthy usage numbers without \
                         hand-building every report.",
        goals: &[
            "One source of truth for product metrics",
            "Self-serve dashboards for product managers",
            "Predictable tool costs",
        ],
        frustrations: &[
            "Tools that need weeks of engineering before showing any data",
            "Event-volume bills that spike without warning",
            "Metric definitions drifting between teams",
        ],
    },
    NewPersona {
        name: "Sam Okafor",
        role: "Growth product manager",
        bio: "First product manager at a Series A startup; runs onboarding experiments and \
              reports activation every week.",
        job_to_be_done: "See where trial users drop off and test fixes without waiting on the \
                         data team.",
        goals: &["Ship one onboarding experiment a week", "Know which features drive conversion"],
        frustrations: &[
            "Waiting on engineers to add tracking",
            "Dashboards nobody trusts",
            "Writing SQL for every question",
        ],
    },
];

impl Store {
    /// Creates the `acme` demo workspace with its journeys, items, links, comments and
    /// personas, in one transaction, when the database has no workspace yet (a new database).
    /// Replicas that start together take turns on the write lock; the second finds the seed.
    pub(crate) fn seed_demo_if_empty(&self) -> StoreResult<()> {
        let now = self.now().timestamp();
        let conn = self.writer_unlimited();
        let tx = conn.transaction()?;
        let workspaces: i64 =
            tx.query_row("SELECT count(*) FROM workspaces", [], |row| row.get(0))?;
        if workspaces > 0 {
            return Ok(());
        }
        let ws: i64 = tx.query_row(
            "INSERT INTO workspaces (slug, name, created_at) VALUES ('acme', 'Acme Analytics', ?1)
             RETURNING id",
            [now],
            |row| row.get(0),
        )?;

        let mut steps = HashMap::new();
        for (position, journey) in (0..).zip(JOURNEYS) {
            let journey_id = insert_journey(
                &tx,
                ws,
                journey.slug,
                journey.name,
                journey.description,
                position,
                now,
            )?;
            for (position, stage) in (0..).zip(journey.stages) {
                let stage_id =
                    insert_stage(&tx, ws, &journey_id, stage.name, stage.description, position)?;
                for (position, step) in (0..).zip(stage.steps) {
                    let step_id =
                        insert_step(&tx, ws, &stage_id, step.name, step.description, position)?;
                    steps.insert(step.key, step_id);
                }
            }
        }
        renumber_map(&tx, ws)?;

        let mut items = HashMap::new();
        for item in ITEMS {
            let mut fields = fields(item.fields);
            // Priority, impact and effort are the item's own properties, not kind fields.
            let mut property = |name: &str| match fields.remove(name) {
                Some(Value::String(text)) => Some(text),
                _ => None,
            };
            let (priority, impact, effort) =
                (property("priority"), property("impact"), property("effort"));
            let new = NewItem {
                step_id: lookup(&steps, item.step)?.to_owned(),
                kind: item.kind,
                title: item.title.to_owned(),
                description: Some(item.description.to_owned()),
                status: Some(item.status.to_owned()),
                owner: Some(item.owner.to_owned()),
                priority,
                impact,
                effort,
                fields: Some(fields),
            };
            items.insert(item.key, insert_item(&tx, ws, &new, now)?);
        }
        for (from, to) in LINKS {
            insert_link(&tx, ws, lookup(&items, from)?, lookup(&items, to)?, now)?;
        }
        for comment in COMMENTS {
            insert_comment(
                &tx,
                ws,
                lookup(&items, comment.item)?,
                comment.author,
                comment.body,
                now,
            )?;
        }
        for persona in PERSONAS {
            insert_persona(&tx, ws, persona, now)?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn lookup<'a>(ids: &'a HashMap<&str, String>, key: &str) -> StoreResult<&'a str> {
    ids.get(key)
        .map(String::as_str)
        .ok_or_else(|| StoreError::Invalid(format!("the demo data refers to an unknown {key:?}")))
}

fn fields(fields: &[(&str, Field)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Field::Text(text) => Value::from(*text),
                Field::Int(n) => Value::from(*n),
                Field::Decimal(n) => Value::from(*n),
            };
            ((*name).to_owned(), value)
        })
        .collect()
}
