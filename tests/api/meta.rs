//! Endpoints about the service itself.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok_without_credentials() {
    let app = TestApp::new().await;
    let response = app.send(request("GET", "/healthz")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(body(&response), json!({"status": "ok"}));
}
