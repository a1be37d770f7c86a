//! A corpus of malformed input, each answered cleanly: JSON-RPC that is cut, nested too deep,
//! mistyped, not UTF-8 or duplicated; ids at the edges of what JSON holds; and HTTP that a
//! client library would refuse to send (raw TCP): huge heads, broken framing, lying lengths.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::error_text;
use super::raw::{Raw, addr_of, raw_exchange, raw_post};
use super::wellformed::check_answer;
use crate::common::{MCP_ACCEPT, TestServer, rpc, tool_call};

/// The server still answers: `/healthz`, and a ping with `token`.
async fn assert_healthy(server: &TestServer, token: &str) {
    server.visitor().get("/healthz").expect(200).await;
    server.key(token).post(&rpc(1, "ping", json!({}))).expect(200).await;
}

#[tokio::test]
async fn malformed_json_rpc_gets_well_formed_errors() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Corpus", "never", "read-write").await;
    let mut count = 0;
    let mut send = async |body: Vec<u8>, status: u16, code: Option<i64>| -> Value {
        count += 1;
        let answer = key.post_bytes(body.clone()).send().await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        check_answer(&answer, None, None).unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert_eq!(answer.status, status, "{shown}: {}", answer.text());
        let reply = answer.json();
        if let Some(code) = code {
            assert_eq!(reply["error"]["code"], code, "{shown}: {reply}");
        }
        reply
    };

    // Every proper prefix of a real request is a parse error.
    let whole =
        serde_json::to_vec(&tool_call(1, "search", json!({"query": "trial"}))).expect("json");
    for cut in 0..whole.len() {
        send(whole[..cut].to_vec(), 400, Some(-32700)).await;
    }

    // Ids at the edges of what JSON numbers and strings can hold.
    let long_id = "i".repeat(10 * 1024);
    for (id_text, echoed) in [
        ("1e308", json!(1e308)),
        ("-1e308", json!(-1e308)),
        ("18446744073709551615", json!(u64::MAX)),
        ("-9223372036854775808", json!(i64::MIN)),
        ("18446744073709551616", json!(18_446_744_073_709_551_616.0_f64)),
        ("0.5", json!(0.5)),
        ("-0", json!(-0.0)),
        (&format!("\"{long_id}\"") as &str, json!(long_id)),
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id_text},"method":"ping"}}"#);
        let reply = send(body.into_bytes(), 200, None).await;
        assert_eq!(reply["id"], echoed, "id {}", &id_text[..id_text.len().min(30)]);
        assert_eq!(reply["result"], json!({}));
    }
    // Beyond f64: not representable, refused as a parse error rather than rounded to infinity.
    send(br#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#.to_vec(), 400, Some(-32700)).await;
    // A 2 MiB id is over the body limit.
    let huge = format!(r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#, "i".repeat(2 << 20));
    send(huge.into_bytes(), 413, Some(-32600)).await;

    // Deep nesting: 100,000 brackets or braces, alone and inside a real request.
    let n = 100_000;
    send(format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes(), 400, Some(-32700)).await;
    send("[".repeat(n).into_bytes(), 400, Some(-32700)).await;
    send(format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n)).into_bytes(), 400, Some(-32700))
        .await;
    let deep_arguments = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"query":{}"x"{}}}}}}}"#,
        "[".repeat(n),
        "]".repeat(n)
    );
    send(deep_arguments.into_bytes(), 400, Some(-32700)).await;
    // Nesting that parses (under serde_json's limit of 128) reaches the tool as bad arguments.
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"query":{}"x"{}}}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let reply = send(nested.into_bytes(), 200, None).await;
    assert!(error_text(&reply["result"]).contains("Invalid arguments for search"), "{reply}");

    // Wrong types everywhere.
    let wrong: Vec<(Value, u16, i64)> = vec![
        (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"}), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": 5}), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": true}), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]}), 200, -32602),
        (rpc(1, "tools/call", json!({"name": 5})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": null})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": ["search"]})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": {"n": "search"}})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": "search", "arguments": ["q"]})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": "search", "arguments": "q"})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": "search", "arguments": 1})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": "search", "arguments": false})), 200, -32602),
        (rpc(1, "tools/call", json!({"name": "search\u{0}"})), 200, -32602),
        (rpc(1, "initialize", json!({"protocolVersion": 20251125})), 200, -32602),
        (rpc(1, "tools/list", json!({"cursor": 5})), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": 5}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": 1, "method": ["ping"]}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": 1, "method": null}), 400, -32600),
        (json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": 2, "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": 2.0, "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": null, "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": true, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": [1], "method": "ping"}), 400, -32600),
        (json!(null), 400, -32600),
        (json!(true), 400, -32600),
        (json!(42), 400, -32600),
        (json!([1, "two", null]), 200, -32600),
        (json!([[]]), 200, -32600),
    ];
    for (message, status, code) in wrong {
        let reply = send(serde_json::to_vec(&message).expect("json"), status, None).await;
        let first = if reply.is_array() { &reply[0] } else { &reply };
        assert_eq!(first["error"]["code"], code, "{message}: {reply}");
        if status == 200 && message.get("id").is_some_and(|id| id.is_number()) {
            assert_eq!(first["id"], message["id"], "{message}");
        }
    }
    // Odd but harmless members are ignored: a client info of the wrong shape.
    for params in [
        json!({"protocolVersion": "2025-11-25", "clientInfo": "just a string"}),
        json!({"protocolVersion": "2025-11-25", "clientInfo": {"name": 5, "version": {}}}),
        json!({"protocolVersion": "2025-11-25", "capabilities": [1, 2]}),
    ] {
        let reply =
            send(serde_json::to_vec(&rpc(1, "initialize", params)).expect("json"), 200, None).await;
        assert!(reply["result"]["serverInfo"].is_object(), "{reply}");
    }

    // Invalid UTF-8 inside JSON strings, lone surrogates, a byte-order mark, trailing bytes.
    for bytes in [
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\xfe\"}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\xc0\xafng\"}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":\"\xed\xa0\x80\",\"method\":\"ping\"}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xe2\x82\"}".to_vec(),
        br#"{"jsonrpc":"2.0","id":"\ud800","method":"ping"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\udc00\ud800"}"#.to_vec(),
        b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}"#
            .to_vec(),
        b"   ".to_vec(),
        b"\x00".to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#.to_vec(),
        br#"{'jsonrpc':'2.0','id':1,'method':'ping'}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":NaN,"method":"ping"}"#.to_vec(),
    ] {
        send(bytes, 400, Some(-32700)).await;
    }
    // A valid escaped NUL is just text: an unknown method.
    send(br#"{"jsonrpc":"2.0","id":1,"method":"ping\u0000"}"#.to_vec(), 200, Some(-32601)).await;

    // Duplicate keys: the last one wins (serde_json's rule), consistently for every member.
    let reply =
        send(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#.to_vec(), 200, None).await;
    assert_eq!(reply["id"], 2);
    let reply = send(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"ping"}"#.to_vec(),
        200,
        None,
    )
    .await;
    assert_eq!(reply["result"], json!({}));
    send(br#"{"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec(), 200, None).await;
    send(
        br#"{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ping"}"#.to_vec(),
        400,
        Some(-32600),
    )
    .await;
    let reply = send(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_item","name":"list_personas"}}"#
            .to_vec(),
        200,
        None,
    )
    .await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");

    eprintln!("security corpus: malformed JSON-RPC: {count} requests");
    assert_healthy(&server, &key.token).await;
    server.stop().await;
}

/// JSON-RPC: a response's id "MUST be the same as the value of the id member in the Request".
/// serde_json without its `float_roundtrip` feature parses some numbers 1 ULP off, so such an
/// id comes back as a different number and the client cannot match the answer.
#[tokio::test]
async fn number_ids_are_echoed_exactly() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Ids", "never", "read-write").await;
    for id in ["-9.361210491330721e93", "1.0715660391465826e-75", "-1.603964615428183e143", "0.1"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let answer = key.post_bytes(body.into_bytes()).send().await;
        assert_eq!(answer.status, 200);
        // Compared with std's exact parser: serde_json's own may be the one that is off.
        let echoed = answer.text();
        let got = echoed.split(r#""id":"#).nth(1).and_then(|rest| rest.split(',').next());
        let got = got.and_then(|text| text.parse::<f64>().ok());
        assert_eq!(got, id.parse::<f64>().ok(), "sent id {id}, got {echoed}");
    }
    server.stop().await;
}

#[tokio::test]
async fn malformed_http_gets_a_clean_answer_not_a_dropped_connection() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Corpus", "never", "read-write").await;
    let token = key.token.as_str();
    let addr = addr_of(&server.url);
    let ping = serde_json::to_vec(&rpc(1, "ping", json!({}))).expect("json");
    let mut count = 0;

    // A 64 KB header value is within hyper's limits and reaches the handler.
    let pad = "p".repeat(64 * 1024);
    let outcome =
        raw_exchange(&addr, raw_post(&addr, token, &format!("X-Pad: {pad}\r\n"), &ping), false)
            .await;
    count += 1;
    assert_eq!(outcome.status(), Some(200), "{outcome:?}");
    // A 64 KB Authorization header is a malformed token: 401 with a challenge.
    let outcome = raw_exchange(&addr, raw_post(&addr, &pad, "", &ping), false).await;
    count += 1;
    let Raw::Answered { status: 401, head, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");

    // 1 MB in one header (Authorization, or any other), and 200 headers: over hyper's limits.
    // The answer must be a status line (431 or 400), not a reset or a silent close.
    let mega = "m".repeat(1024 * 1024);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (what, request) in [
        ("1 MB Authorization", raw_post(&addr, &mega, "", &ping)),
        ("1 MB X-Pad", raw_post(&addr, token, &format!("X-Pad: {mega}\r\n"), &ping)),
        ("200 headers", raw_post(&addr, token, &many, &ping)),
    ] {
        let outcome = raw_exchange(&addr, request, false).await;
        count += 1;
        eprintln!("security corpus: {what}: {:?}", outcome.status());
        assert!(
            matches!(outcome.status(), Some(431 | 400)),
            "{what}: expected 431 or 400, got {outcome:?}"
        );
    }

    // Content-Length larger than the body, then the client half-closes: a JSON parse error.
    let head = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: {MCP_ACCEPT}\r\nContent-Length: 500\r\n\r\n"
    );
    let mut request = head.clone().into_bytes();
    request.extend_from_slice(br#"{"jsonrpc":"2.0","id":1,"#);
    let outcome = raw_exchange(&addr, request.clone(), true).await;
    count += 1;
    let Raw::Answered { status: 400, head: answer_head, body } = &outcome else {
        panic!("short body: {outcome:?}")
    };
    assert!(answer_head.to_ascii_lowercase().contains("content-type: application/json"));
    let body: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(body["error"]["code"], -32700, "{body}");
    // ... and when the client goes away entirely, the server carries on.
    {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream.write_all(&request).await.expect("write");
        drop(stream);
        count += 1;
    }
    // A declared length over the limit is refused before the body is read.
    let mut request = head.replace("500", "2000000").into_bytes();
    request.extend_from_slice(b"{}");
    let outcome = raw_exchange(&addr, request, false).await;
    count += 1;
    assert_eq!(outcome.status(), Some(413), "{outcome:?}");

    // Framing hyper refuses itself, and framing it accepts that our handler then refuses.
    let body_of = |head: &str, body: &str| {
        format!(
            "POST /api/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: {MCP_ACCEPT}\r\n{head}Connection: close\r\n\r\n{body}"
        )
        .into_bytes()
    };
    let framing: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("non-numeric Content-Length", body_of("Content-Length: abc\r\n", "{}"), &[400]),
        (
            "two different Content-Lengths",
            body_of("Content-Length: 2\r\nContent-Length: 3\r\n", "{}x"),
            &[400],
        ),
        (
            "bad chunk size",
            body_of("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
            &[400],
        ),
        (
            "chunked and Content-Length",
            body_of("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            &[400],
        ),
        ("unknown transfer coding", body_of("Transfer-Encoding: gzip\r\n", "{}"), &[400, 501]),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), &[400]),
        ("HTTP/9.9", b"POST /api/mcp HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), &[400, 505]),
        ("NUL in a header", body_of("X-Bad: a\0b\r\nContent-Length: 2\r\n", "{}"), &[400]),
        (
            "non-UTF-8 Authorization",
            b"POST /api/mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \xff\xfe\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                .to_vec(),
            &[401],
        ),
    ];
    for (what, request, statuses) in framing {
        let outcome = raw_exchange(&addr, request, false).await;
        count += 1;
        eprintln!("security corpus: {what}: {:?}", outcome.status());
        assert!(
            outcome.status().is_some_and(|s| statuses.contains(&s)),
            "{what}: expected one of {statuses:?}, got {outcome:?}"
        );
    }

    // A 100 KB path is over hyper's URI limit: 414 (hyper's own answers have empty bodies).
    let outcome = raw_exchange(
        &addr,
        format!(
            "GET /{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            "a".repeat(100_000)
        )
        .into_bytes(),
        false,
    )
    .await;
    count += 1;
    assert_eq!(outcome.status(), Some(414), "{outcome:?}");
    let outcome = raw_exchange(
        &addr,
        format!(
            "GET /{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            "a".repeat(60_000)
        )
        .into_bytes(),
        false,
    )
    .await;
    count += 1;
    assert_eq!(outcome.status(), Some(404), "a 60 KB path is an unknown path: {outcome:?}");

    // Content types: parameters are fine, look-alikes are not.
    for (content_type, status) in [
        ("application/json; charset=utf-8", 200),
        ("APPLICATION/JSON", 200),
        ("application/json-patch+json", 415),
        ("application/jsonx", 415),
        ("text/json", 415),
        ("", 415),
    ] {
        let answer = server
            .visitor()
            .post("/api/mcp")
            .bearer(token)
            .header("accept", MCP_ACCEPT)
            .header("content-type", content_type)
            .body(ping.clone())
            .send()
            .await;
        count += 1;
        assert_eq!(answer.status, status, "{content_type:?}: {}", answer.text());
        check_answer(&answer, None, None).expect("well formed");
    }

    eprintln!("security corpus: malformed HTTP: {count} requests");
    assert_healthy(&server, token).await;
    server.stop().await;
}
