//! The documents workspaces start from, each a `custory-workspace/1` document shipped in the
//! binary and written through the same import as `custory-mcp import` (validated whole, then
//! one transaction: all or nothing):
//!
//! - the templates of `workspaces create --template`, whose workspace's name and slug come from
//!   the request (a template's own `workspace` member is a placeholder);
//! - the demo workspace a new database starts with (`templates/demo.json`): Acme Analytics, a
//!   B2B product-analytics SaaS with a trial-to-paid and a support-escalation journey, so the
//!   MCP tools have real context to serve.

use super::ContentStore;
use super::transfer::{
    DocError, ImportCounts, ImportError, ImportTarget, WorkspaceDocument, validate, write_document,
};
use crate::api::{Template, Workspace};
use crate::store::access::edge;
use crate::store::{StoreError, StoreResult};

/// The demo workspace, as shipped.
pub const DEMO: &str = include_str!("templates/demo.json");

/// The document `template` writes, as shipped; `None` for `blank`.
pub fn source(template: Template) -> Option<&'static str> {
    match template {
        Template::Blank => None,
        Template::Onboarding => Some(include_str!("templates/onboarding.json")),
        Template::TrialToPaid => Some(include_str!("templates/trial-to-paid.json")),
    }
}

/// The document `template` writes; `None` for `blank`. An error means the shipped document
/// does not parse (a bug the tests catch).
pub fn document(template: Template) -> Result<Option<WorkspaceDocument>, String> {
    source(template)
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|error| format!("the {template} template does not parse: {error}"))
        })
        .transpose()
}

/// Creates a workspace holding what `template` holds, in one transaction; a taken slug is a
/// conflict and writes nothing. Returns the workspace and what the template wrote.
pub(super) fn create_workspace_from_template(
    s: &ContentStore<'_>,
    name: &str,
    slug: &str,
    template: Template,
) -> Result<(Workspace, ImportCounts), ImportError> {
    let doc = match document(template) {
        Ok(Some(doc)) => doc,
        Ok(None) => return Ok((empty_workspace(s, name, slug)?, ImportCounts::default())),
        Err(message) => {
            let path = format!("template {template}");
            return Err(ImportError::Invalid(vec![DocError { path, message }]));
        }
    };
    let target = ImportTarget::New { name: name.to_owned(), slug: slug.to_owned() };
    let (_, counts) = super::transfer::import_workspace(s, &target, &doc, false).map_err(
        |error| match error {
            // The one conflict of a new workspace: said as `create_workspace` says it.
            ImportError::Store(StoreError::Conflict(_)) => {
                StoreError::Conflict(format!("a workspace with the slug {slug:?} already exists"))
                    .into()
            }
            other => other,
        },
    )?;
    let workspace = edge::workspace_with_slug(&s.reader()?, slug)?
        .ok_or_else(|| StoreError::NotFound(format!("the workspace {slug:?} is gone")))?;
    Ok((workspace.workspace, counts))
}

/// Creates the demo workspace (`acme`) with its journeys, items, links, comments and personas,
/// in one transaction, when the database has no workspace yet (a new database). Replicas that
/// start together take turns on the write lock; the second finds the demo there. Unlike an
/// import it leaves no audit event: nobody made it.
pub(super) fn seed_demo_if_empty(s: &ContentStore<'_>) -> StoreResult<()> {
    let broken = |why: String| StoreError::Invalid(format!("the demo workspace {why}"));
    let doc: WorkspaceDocument =
        serde_json::from_str(DEMO).map_err(|error| broken(format!("does not parse: {error}")))?;
    validate(&doc).map_err(|errors| broken(format!("is not valid: {errors:?}")))?;
    let now = s.now().timestamp();
    let conn = s.writer_unlimited();
    let tx = conn.transaction()?;
    if edge::any_workspace(&tx)? {
        return Ok(());
    }
    let ws = edge::insert_workspace(&tx, &doc.workspace.name, &doc.workspace.slug, now)?
        .ok_or_else(|| broken("slug is taken".into()))?;
    write_document(&tx, ws, &doc, 0, now)?;
    tx.commit()?;
    Ok(())
}

/// A workspace that holds nothing (`blank`); a taken slug is a conflict.
fn empty_workspace(s: &ContentStore<'_>, name: &str, slug: &str) -> StoreResult<Workspace> {
    let now = s.now();
    if edge::insert_workspace(&s.writer(), name, slug, now.timestamp())?.is_none() {
        return Err(StoreError::Conflict(format!(
            "a workspace with the slug {slug:?} already exists"
        )));
    }
    Ok(Workspace { slug: slug.to_owned(), name: name.to_owned(), created_at: now })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::content::transfer::validate;

    #[test]
    fn the_demo_is_a_valid_document_with_every_kind() {
        let doc: WorkspaceDocument = serde_json::from_str(DEMO).expect("parses");
        assert_eq!(validate(&doc), Ok(()));
        assert_eq!(doc.workspace.slug, "acme");
        let items: Vec<_> = doc
            .journeys
            .iter()
            .flat_map(|j| &j.stages)
            .flat_map(|s| &s.steps)
            .flat_map(|t| &t.items)
            .collect();
        for kind in crate::store::content::model::ItemKind::ALL {
            assert!(items.iter().any(|i| i.kind == kind.as_str()), "a {kind}");
        }
    }

    #[test]
    fn every_template_is_a_valid_document() {
        for template in Template::ALL {
            let Some(doc) = document(template).expect("parses") else {
                assert_eq!(template, Template::Blank);
                continue;
            };
            assert_eq!(validate(&doc), Ok(()), "{template}");
            assert_eq!(doc.journeys.len(), 1, "{template}: one journey");
            assert_eq!(doc.journeys[0].slug, template.as_str(), "{template}: its journey's slug");
            let stages = &doc.journeys[0].stages;
            assert!((3..=5).contains(&stages.len()), "{template}: {} stages", stages.len());
            for stage in stages {
                assert!((2..=4).contains(&stage.steps.len()), "{template}: {}", stage.name);
            }
            let items: Vec<_> =
                stages.iter().flat_map(|s| &s.steps).flat_map(|t| &t.items).collect();
            assert!((5..=12).contains(&items.len()), "{template}: {} items", items.len());
            for kind in crate::store::content::model::ItemKind::ALL {
                assert!(items.iter().any(|i| i.kind == kind.as_str()), "{template}: a {kind}");
            }
            assert!(items.iter().all(|i| i.title.starts_with("Example: ")), "{template}");
            assert!(!doc.links.is_empty(), "{template}: links");
            assert_eq!(doc.personas.len(), 1, "{template}: a persona");
            assert_eq!(doc.personas[0].journeys, [template.as_str()], "{template}");
        }
    }
}
