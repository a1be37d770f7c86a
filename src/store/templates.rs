//! The templates a new workspace can start from (`workspaces create --template`): each is a
//! `custory-workspace/1` document shipped in the binary, written through the same import as
//! `custory-mcp import` (validated whole, then one transaction: all or nothing). The workspace's
//! name and slug come from the request; a template's own `workspace` member is a placeholder.

use super::transfer::{DocError, ImportCounts, ImportError, ImportTarget, WorkspaceDocument};
use super::{Store, StoreError};
use crate::api::{Template, Workspace};

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

impl Store {
    /// Creates a workspace holding what `template` holds, in one transaction; a taken slug is a
    /// conflict and writes nothing. Returns the workspace and what the template wrote.
    pub fn create_workspace_from_template(
        &self,
        name: &str,
        slug: &str,
        template: Template,
    ) -> Result<(Workspace, ImportCounts), ImportError> {
        let doc = match document(template) {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok((self.create_workspace(name, slug)?, ImportCounts::default())),
            Err(message) => {
                let path = format!("template {template}");
                return Err(ImportError::Invalid(vec![DocError { path, message }]));
            }
        };
        let target = ImportTarget::New { name: name.to_owned(), slug: slug.to_owned() };
        let (_, counts) =
            self.import_workspace(&target, &doc, false).map_err(|error| match error {
                // The one conflict of a new workspace: said as `create_workspace` says it.
                ImportError::Store(StoreError::Conflict(_)) => StoreError::Conflict(format!(
                    "a workspace with the slug {slug:?} already exists"
                ))
                .into(),
                other => other,
            })?;
        let workspace = self
            .workspace_by_slug(slug)?
            .ok_or_else(|| StoreError::NotFound(format!("the workspace {slug:?} is gone")))?;
        Ok((workspace.workspace, counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::transfer::validate;

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
            for kind in crate::store::model::ItemKind::ALL {
                assert!(items.iter().any(|i| i.kind == kind.as_str()), "{template}: a {kind}");
            }
            assert!(items.iter().all(|i| i.title.starts_with("Example: ")), "{template}");
            assert!(!doc.links.is_empty(), "{template}: links");
            assert_eq!(doc.personas.len(), 1, "{template}: a persona");
            assert_eq!(doc.personas[0].journeys, [template.as_str()], "{template}");
        }
    }
}
