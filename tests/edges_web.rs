//! A formula-shaped address signed up over real HTTP on the real router, then exported and
//! imported again by the real binary: the export neutralises it and the import restores it.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use dispatch::config::Config;
use dispatch::domain::{ListSlug, WebUrl};
use dispatch::store::{ListSpec, Store};
use dispatch::web::{self, AppState};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use support::cli::Cli;

#[tokio::test]
async fn a_formula_address_from_the_sign_up_form_is_neutralised_on_export_and_restored_on_import() {
    let address = "=cmd|'/Ccalc'!A0@example.org";
    let cli = Cli::new();
    let store = Store::open(cli.db()).await.unwrap();
    store
        .create_list(
            &ListSlug::parse("daily").unwrap(),
            &ListSpec {
                name: Some("Daily".into()),
                double_opt_in: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.web.public_url = WebUrl::parse(&format!("http://{addr}")).unwrap();
    // Single opt-in: the sign-up is active at once and no confirmation mail is queued.
    let state = AppState::new(store.clone(), Arc::new(config));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", address)
        .append_pair("list", "daily")
        .finish();
    // reqwest is built with "rustls-no-provider" (the crate polls feeds over rustls on
    // ring): a client without preconfigured TLS needs a process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/subscribe"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = stop.send(());
    let _ = server.await;
    store.close().await;

    let exported = cli.ok(["subscribers", "export", "--list", "daily"]);
    assert!(
        exported.contains("\n'=cmd|'/Ccalc'!A0@example.org,"),
        "the address is neutralised:\n{exported}"
    );
    for cell in exported.split([',', ';', '\n']) {
        assert!(
            !cell
                .trim_start_matches('"')
                .starts_with(['=', '+', '-', '@']),
            "{cell:?} in\n{exported}"
        );
    }

    let other = Cli::new();
    other.ok(["lists", "create", "copy"]);
    let file = other.write("daily.csv", &exported);
    other.ok([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "copy",
    ]);
    let v: Value = other.json(["subscribers", "show", address, "--json"]);
    assert_eq!(
        v["email"], address,
        "the import restores the original address"
    );
}
