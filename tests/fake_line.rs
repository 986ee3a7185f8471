//! The fake LINE server itself works as later suites rely on: it records
//! what it is sent and answers as scripted, in order, then with `200 {}`.

mod support;

use support::fake_line::FakeLine;

#[tokio::test]
async fn records_requests_and_answers_as_scripted() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/message/push",
        429,
        &[("retry-after", "3")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let client = reqwest::Client::new();
    let url = format!("{}/v2/bot/message/push", line.url());

    let first = client
        .post(&url)
        .header("x-line-retry-key", "123e4567-e89b-12d3-a456-426614174000")
        .body(r#"{"to":"U1","messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "3");
    assert!(first.headers().contains_key("x-line-request-id"));
    assert!(first.text().await.unwrap().contains("rate limit"));

    let second = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.text().await.unwrap(), "{}");

    let seen = line.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/v2/bot/message/push");
    assert_eq!(
        seen[0].headers["x-line-retry-key"],
        "123e4567-e89b-12d3-a456-426614174000"
    );
    assert_eq!(&seen[0].body[..], br#"{"to":"U1","messages":[]}"#);
}
