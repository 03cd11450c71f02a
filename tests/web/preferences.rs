//! The preferences page: choosing categories, and leaving everything.

use crate::{assert_no_redirect, spawn_app};
use reqwest::StatusCode;

#[tokio::test]
async fn preferences_choose_categories_and_leave_everything() {
    let app = spawn_app().await;
    let daily = app
        .list("daily", false, Some("Politics,Business,Sport"))
        .await;
    let weekly = app.list("weekly", false, None).await;
    app.subscribe(daily, &["r@example.com"]).await;
    app.subscribe(weekly, &["r@example.com"]).await;
    let token = app.tokens(daily).await["r@example.com"].as_str().to_owned();
    let path = format!("/preferences/{token}");

    let page = app.get(&path).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("name=\"cat.{daily}\" value=\"Sport\"")));
    assert!(page.contains("The weekly list"));

    // A subset of topics is stored in canonical form; the weekly list (every topic ticked,
    // as the page shows it) keeps "all".
    let all_weekly = format!("cat.{weekly}=Politics&cat.{weekly}=Business&cat.{weekly}=Sport");
    let body = format!(
        "list={daily}&subscribed={daily}&cat.{daily}=sport&cat.{daily}=Politics&list={weekly}&subscribed={weekly}&{all_weekly}&action=save"
    );
    let r = app.post_form(&path, &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("Saved."), "{text}");
    assert_eq!(
        app.categories("r@example.com", "daily").await.as_deref(),
        Some("Politics;Sport")
    );
    assert_eq!(app.categories("r@example.com", "weekly").await, None);

    // Every topic ticked means all (NULL); unticking a list leaves it.
    let body = format!(
        "list={daily}&subscribed={daily}&cat.{daily}=Sport&cat.{daily}=Politics&cat.{daily}=Business&list={weekly}"
    );
    let r = app.post_form(&path, &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.categories("r@example.com", "daily").await, None);
    assert_eq!(
        app.status("r@example.com", "weekly").await.as_deref(),
        Some("unsubscribed")
    );
    // No topic at all while staying is refused, and nothing changes.
    let r = app
        .post_form(&path, &format!("list={daily}&subscribed={daily}"))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.status("r@example.com", "daily").await.as_deref(),
        Some("active")
    );
    // Rejoining a list they had is allowed from their own preferences page.
    let r = app
        .post_form(
            &path,
            &format!("list={weekly}&subscribed={weekly}&{all_weekly}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.status("r@example.com", "weekly").await.as_deref(),
        Some("active")
    );

    let r = app.post_form(&path, "action=unsubscribe-all").await;
    assert_no_redirect(&r);
    assert_eq!(r.status(), StatusCode::OK);
    for slug in ["daily", "weekly"] {
        assert_eq!(
            app.status("r@example.com", slug).await.as_deref(),
            Some("unsubscribed")
        );
    }
}
