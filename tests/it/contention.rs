//! Nobody waits behind the writer but writes: while the database's write lock is held (by a
//! long write elsewhere), writes queue for their turn without holding a thread, so reads (here in
//! another workspace) are answered at once. Run against the real binary, whose blocking pool
//! has eight threads as in production.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::common::{TestDatabase, TestEnv, testing_postgres};

#[tokio::test]
async fn writes_waiting_for_the_writer_hold_no_thread_so_reads_elsewhere_go_on() {
    let env = TestEnv::new();
    let db = TestDatabase::for_backend(&env.home.path().join("contention.db"));
    let serve = env.serve_on(&db.arg(), &[]).await;
    let owner = serve.owner();
    owner.create_workspace(json!({"name": "Other", "template": "onboarding"})).await;
    let reader = owner
        .create_key_in("other", json!({"name": "reader", "expires": "30d", "access": "read-only"}))
        .await;
    let mut writers = Vec::new();
    for n in 0..3 {
        writers.push(owner.create_key(&format!("writer {n}"), "30d", "read-write").await);
    }
    let journey = writers[0].ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("a step").to_owned();

    let held = db.hold_write_lock();
    // Twelve writes from three keys (four each: their whole share), all waiting for the writer.
    let writes: Vec<_> = (0..12)
        .map(|n| {
            let writer = writers[n % 3].clone();
            let args = json!({"step_id": step, "kind": "insight", "title": format!("Write {n}")});
            tokio::spawn(async move {
                writer.send(&crate::common::tool_call(1, "create_item", args)).await
            })
        })
        .collect();
    // Meanwhile reads in another workspace need a blocking thread each, and get one. The
    // writes wait for the lock for as long as the database lets them (SQLite's busy timeout,
    // 5 s; PostgreSQL's statement limit, 2 s): reads that waited behind them would take that.
    let within =
        if testing_postgres() { Duration::from_millis(1500) } else { Duration::from_secs(3) };
    let reads = join_all((0..8).map(|_| reader.ok("list_journeys", json!({}))));
    let answered = tokio::time::timeout(within, reads).await;
    drop(held);
    let answered = answered.expect("reads were answered while twelve writes waited for the writer");
    assert!(
        answered.iter().all(|page| page["journeys"][0]["slug"] == "onboarding"),
        "{answered:?}"
    );
    for write in writes {
        // Each write is answered: made, or refused with a sentence (it waited too long).
        let reply = write.await.expect("write task");
        assert!([200, 503].contains(&reply.status), "{}: {}", reply.status, reply.text());
    }
    serve.terminate().await;
}
