//! Resources, prompts and completion are confined like the tools: B's journeys and items are
//! not found by A's key (told exactly like an unknown one), and nothing of B is listed,
//! expanded or offered to A.

use serde_json::json;

use super::isolation::TwoWorkspaces;

#[tokio::test]
async fn resources_prompts_and_completions_show_nothing_of_another_workspace() {
    let two = TwoWorkspaces::start().await;
    let a = &two.a;
    let b_secrets = two.secrets();

    let mut uris: Vec<String> = vec!["custory://journeys/zebra-secret".into()];
    uris.extend(two.journeys_b.iter().map(|id| format!("custory://journeys/{id}")));
    uris.extend(two.items_b.iter().map(|id| format!("custory://items/{id}")));
    for uri in &uris {
        let reply = a.rpc("resources/read", json!({"uri": uri})).await;
        assert_eq!(reply["error"]["code"], -32002, "{uri}: {reply}");
        let unknown = uri.replace("zebra-secret", "no-such-journey").replace("Zyx", "Nox");
        let other = a.rpc("resources/read", json!({"uri": unknown})).await;
        let segment = |uri: &str| uri.rsplit('/').next().unwrap_or_default().to_owned();
        let (mine, theirs) = (segment(uri), segment(&unknown));
        assert_eq!(
            reply["error"]["message"].as_str().map(|m| m.replace(&mine, "ID")),
            other["error"]["message"].as_str().map(|m| m.replace(&theirs, "ID")),
            "B's {uri} is told apart from an unknown one"
        );
    }
    let shown = [
        a.rpc("resources/list", json!({})).await,
        a.rpc(
            "prompts/get",
            json!({"name": "review_stage",
            "arguments": {"journey": "trial-to-paid", "stage": "Discover"}}),
        )
        .await,
        a.rpc(
            "prompts/get",
            json!({"name": "summarise_changes",
            "arguments": {"journey": "trial-to-paid", "since": "30d"}}),
        )
        .await,
        a.rpc(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "review_stage"},
            "argument": {"name": "journey", "value": "zeb"}}),
        )
        .await,
        a.rpc(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "review_stage"},
            "argument": {"name": "stage", "value": "Zyx"}}),
        )
        .await,
        a.rpc(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "notes_to_insights"},
            "argument": {"name": "step", "value": "Zyx"}}),
        )
        .await,
        a.rpc(
            "completion/complete",
            json!({"ref": {"type": "ref/resource",
            "uri": "custory://journeys/{journey}"}, "argument": {"name": "journey", "value": ""}}),
        )
        .await,
    ];
    for reply in &shown {
        assert!(reply.get("result").is_some(), "{reply}");
        let text = reply.to_string();
        for secret in &b_secrets {
            assert!(!text.contains(secret), "{secret} of B shown to A: {text}");
        }
    }
    assert_eq!(shown[3]["result"]["completion"]["values"], json!([]), "{}", shown[3]);
    let prompt = a
        .rpc(
            "prompts/get",
            json!({"name": "review_stage",
            "arguments": {"journey": "zebra-secret", "stage": "Zyxwvut stage"}}),
        )
        .await;
    assert_eq!(prompt["error"]["code"], -32602, "{prompt}");
    two.assert_b_untouched_and_stop().await;
}
