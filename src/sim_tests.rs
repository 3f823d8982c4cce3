use super::*;

#[test]
fn faults_are_shares_that_add_up_to_at_most_one() {
    assert_eq!(Faults::default().validate(), Ok(()));
    let faults = |fail_rate, throttle_rate| Faults {
        fail_rate,
        throttle_rate,
        ..Faults::default()
    };
    assert_eq!(faults(0.5, 0.5).validate(), Ok(()));
    let e = faults(1.5, 0.0).validate().unwrap_err();
    assert_eq!(e, InvalidFaults::NotAShare);
    assert_eq!(
        e.to_string(),
        "fail_rate and throttle_rate are shares from 0 to 1"
    );
    assert_eq!(faults(0.0, -0.1).validate(), Err(InvalidFaults::NotAShare));
    let e = faults(0.6, 0.5).validate().unwrap_err();
    assert_eq!(e.to_string(), "fail_rate + throttle_rate must not exceed 1");
}

const TOKEN: &str = "sim-unit-token";
const PSK: &str = "lab-psk-5d2e9a71";

/// An emulator (`expose_psks_for_lab` as given) holding one tunnel created over HTTP, and what
/// `GET /_sim/tunnels/{id}/psk` answers with `token`: status and body.
async fn psk_route(expose_psks_for_lab: bool, token: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimOptions {
        expose_psks_for_lab,
        ..SimOptions::local(SecretString::from(TOKEN))
    })
    .await
    .expect("start the emulator");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let created: Value = http
        .post(format!("{}/api/v1/tunnels", sim.url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "name": "Lab IPSec1",
            "authenticationID": "lab@branch.example",
            "authenticationPSK": PSK,
            "locationID": "loc-1",
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("created tunnel");
    let id = created["id"].as_str().expect("an id");
    let resp = http
        .get(format!("{}/_sim/tunnels/{id}/psk", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET psk");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[test]
fn psks_stay_in_the_emulator_by_default() {
    assert!(!SimOptions::local(SecretString::from(TOKEN)).expose_psks_for_lab);
}

#[tokio::test]
async fn the_psk_route_is_refused_unless_the_lab_opted_in() {
    let (status, body) = psk_route(false, TOKEN).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains(PSK), "the PSK leaked: {body}");
    assert!(body.contains("--expose-psks-for-lab"), "{body}");
}

#[tokio::test]
async fn the_lab_opt_in_serves_the_stored_psk_to_the_token_holder_only() {
    let (status, body) = psk_route(true, TOKEN).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["psk"], PSK);
    let (status, body) = psk_route(true, "not-the-token").await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(PSK), "the PSK leaked: {body}");
}
