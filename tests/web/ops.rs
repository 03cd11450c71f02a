//! `/healthz` and `/metrics`.

use std::collections::HashMap;

use crate::spawn_app;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

#[tokio::test]
async fn healthz_and_metrics() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let health = r.text().await.unwrap();
    assert_eq!(health.lines().next(), Some("ok"), "{health}");
    assert!(health.contains("\ndatabase: sqlite\n"), "{health}");

    let list = app.list("daily", false, None).await;
    app.subscribe(list, &["a@example.com", "b@example.com"])
        .await;
    let tokens = app.tokens(list).await;
    app.post_form(
        &format!("/unsubscribe/{}", tokens["a@example.com"].as_str()),
        "",
    )
    .await;

    let r = app.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[CONTENT_TYPE].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for name in [
        "dispatch_messages_total",
        "dispatch_retries_total",
        "dispatch_queue_depth",
        "dispatch_last_edition_timestamp_seconds",
        "dispatch_last_edition_lateness_seconds",
        "dispatch_subscribers",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    // Every sample line is `name{labels} value`.
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect(line);
        let open = series.find('{').expect(line);
        assert!(series.ends_with('}'), "{line}");
        assert!(
            series[..open]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{line}"
        );
        for pair in series[open + 1..series.len() - 1].split(',') {
            let (k, v) = pair.split_once('=').expect(line);
            assert!(
                !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                "{line}"
            );
        }
        value.parse::<f64>().expect(line);
        samples.insert(series.to_owned(), value.to_owned());
    }
    assert_eq!(samples["dispatch_queue_depth{list=\"daily\"}"], "2");
    assert_eq!(
        samples["dispatch_subscribers{list=\"daily\",status=\"unsubscribed\"}"],
        "1"
    );
    assert_eq!(
        samples["dispatch_subscribers{list=\"daily\",status=\"active\"}"],
        "1"
    );
    assert_ne!(
        samples["dispatch_last_edition_timestamp_seconds{list=\"daily\"}"],
        "0"
    );
}
