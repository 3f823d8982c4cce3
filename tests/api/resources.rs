//! What the documents make the same for tunnels and connectors, tested once and run for each:
//! get, list, status and delete; paging; statuses set on the emulator; a rename onto a taken
//! name; unknown and malformed ids; a wrong token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use popsel::atmos::{
    ApiError, ApiObserver, Client, ClientConfig, Connector, ConnectorSpec, ConnectorState,
    ConnectorUpdate, Observer, StateSet, Tunnel, TunnelState, TunnelUpdate,
};
use popsel::sim::{Emulated, Sim};
use secrecy::SecretString;
use serde_json::json;

use crate::support;
use crate::support::api::{assert_no_secrets, paged_client};
use crate::support::assert_contains;

/// What a generic test needs of a resource beyond its [`Emulated`] description.
trait Fixture: Emulated + PartialEq {
    /// The state of a new object on the emulator.
    const CREATED: Self::State;
    /// Secrets a create sends, which must never show up in an error.
    const SECRETS: &'static [&'static str];

    /// Creates an object named `name` (letters, digits and dashes) through the client.
    async fn create(client: &Client, name: &str) -> Result<Self, ApiError>;

    async fn rename(client: &Client, id: &str, name: &str) -> Result<(), ApiError>;

    /// A created object as get and list return it.
    fn listed(self) -> Self;
}

impl Fixture for Tunnel {
    const CREATED: TunnelState = TunnelState::Disconnected;
    const SECRETS: &'static [&'static str] = &[crate::tunnels::PSK];

    async fn create(client: &Client, name: &str) -> Result<Self, ApiError> {
        let spec = crate::tunnels::spec(name, &format!("{name}@branch.example"));
        client.create_tunnel(&spec).await
    }

    async fn rename(client: &Client, id: &str, name: &str) -> Result<(), ApiError> {
        let update = TunnelUpdate {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        client.update_tunnel(id, &update).await
    }

    fn listed(self) -> Self {
        self
    }
}

impl Fixture for Connector {
    const CREATED: ConnectorState = ConnectorState::Pending;
    const SECRETS: &'static [&'static str] = &[];

    async fn create(client: &Client, name: &str) -> Result<Self, ApiError> {
        let spec = ConnectorSpec {
            name: name.to_owned(),
            connector_zone_id: None,
        };
        client.create_connector(&spec).await
    }

    async fn rename(client: &Client, id: &str, name: &str) -> Result<(), ApiError> {
        let update = ConnectorUpdate {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        client.update_connector(id, &update).await
    }

    /// The installation command only comes with create.
    fn listed(self) -> Self {
        Connector {
            command: None,
            ..self
        }
    }
}

/// Each generic test below, once for tunnels and once for connectors.
macro_rules! for_each_resource {
    ($($test:ident),+ $(,)?) => {
        mod tunnels {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test::<popsel::atmos::Tunnel>().await;
                }
            )+
        }
        mod connectors {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test::<popsel::atmos::Connector>().await;
                }
            )+
        }
    };
}

for_each_resource!(
    get_list_status_delete_round_trip,
    statuses_set_on_the_emulator_are_read_back,
    listing_across_pages_returns_every_object_once_in_creation_order,
    a_rename_onto_a_taken_name_is_a_409,
    unknown_ids_are_404s,
    dot_ids_never_address_the_collection,
    a_wrong_token_is_a_401_that_never_shows_the_token,
);

fn stored<R: Emulated>(sim: &Sim) -> Vec<R> {
    sim.with_store(|s| s.list::<R>())
}

async fn get_list_status_delete_round_trip<R: Fixture>() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let created = R::create(&client, "round-trip").await.expect("create");
    let id = created.id().to_owned();
    assert!(!id.is_empty());
    let listed = created.listed();

    assert_eq!(client.get::<R>(&id).await.unwrap(), listed);
    assert_eq!(client.list::<R>().await.unwrap(), vec![listed.clone()]);
    assert_eq!(stored::<R>(&sim), vec![listed]);
    let status = client.status::<R>(&id).await.unwrap();
    assert_eq!(status.id, id);
    assert_eq!(status.status, R::CREATED);

    client.delete::<R>(&id).await.unwrap();
    assert!(client.get::<R>(&id).await.unwrap_err().is_not_found());
    assert!(client.list::<R>().await.unwrap().is_empty());
    assert!(stored::<R>(&sim).is_empty());
    // Deleting again is a 404: nothing ambiguous happened before it.
    let err = client.delete::<R>(&id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

async fn statuses_set_on_the_emulator_are_read_back<R: Fixture>() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let object = R::create(&client, "status").await.unwrap();
    let id = object.id();
    let mut settings = Vec::new();
    for &state in R::State::ALL.iter().filter(|s| **s != R::State::UNKNOWN) {
        settings.push((state.as_str().to_owned(), state));
        settings.push((state.as_str().to_lowercase(), state));
    }
    // A state the document does not list reads back as Unknown, not as an error.
    for undocumented in ["Degraded", "Hibernating"] {
        settings.push((undocumented.to_owned(), R::State::UNKNOWN));
    }
    for (set, expected) in settings {
        let (code, body) = support::sim_request(
            &sim,
            reqwest::Method::PUT,
            &format!("/_sim/{}/{id}/status", R::COLLECTION),
            json!({ "status": set }),
        )
        .await;
        assert_eq!(code, 204, "set status {set:?}: {body}");
        let status = client.status::<R>(id).await.unwrap();
        assert_eq!(status.status, expected, "after setting {set:?}");
        assert_eq!(status.id, id);
    }
}

/// With 3 objects a page: an empty list, then `count` objects listed whole and page by page.
async fn list_and_page<R: Fixture>(count: usize) {
    let sim = support::start_sim(support::no_faults()).await;
    let client = paged_client(&sim, 3);
    assert_eq!(client.page_size(), 3);
    let page_url = |n: u32| {
        let collection = R::COLLECTION;
        format!(
            "{}/api/v1/{collection}?pageSize=3&pageNumber={n}",
            sim.url()
        )
    };

    let empty = client.list_page::<R>(1).await.unwrap();
    assert_eq!((empty.total_pages, empty.total_records), (0, 0));
    assert!(empty.data.is_empty());
    assert_eq!((empty.next_page, empty.previous_page), (None, None));
    assert!(client.list::<R>().await.unwrap().is_empty());

    let mut expected = Vec::new();
    for i in 0..count {
        let created = R::create(&client, &format!("p{i:02}")).await.unwrap();
        expected.push(created.listed());
    }
    let gets = || sim.request_counts()["GET"].as_u64().unwrap_or(0);
    let before = gets();
    let listed = client.list::<R>().await.unwrap();
    assert_eq!(listed, expected);
    let names: Vec<&str> = listed.iter().map(|o| o.name()).collect();
    let expected_names: Vec<String> = (0..count).map(|i| format!("p{i:02}")).collect();
    assert_eq!(names, expected_names);
    let pages = count.div_ceil(3) as u32;
    assert_eq!(
        gets() - before,
        u64::from(pages),
        "{count} objects, 3 a page"
    );

    for n in 1..=pages {
        let page = client.list_page::<R>(n).await.unwrap();
        assert_eq!((page.page_number, page.page_size), (n, 3));
        assert_eq!(page.total_pages, pages);
        assert_eq!(page.total_records, count as u64);
        assert_eq!(page.first_page, Some(page_url(1)));
        assert_eq!(page.last_page, Some(page_url(pages)));
        assert_eq!(page.next_page, (n < pages).then(|| page_url(n + 1)));
        assert_eq!(page.previous_page, (n > 1).then(|| page_url(n - 1)));
        let start = (n as usize - 1) * 3;
        assert_eq!(page.data, expected[start..count.min(start + 3)], "page {n}");
    }
    let beyond = client.list_page::<R>(pages + 1).await.unwrap();
    assert!(beyond.data.is_empty());
    assert_eq!(beyond.total_records, count as u64);
}

async fn listing_across_pages_returns_every_object_once_in_creation_order<R: Fixture>() {
    // The last page full, with one and with two left over.
    for count in [6, 7, 8, 10] {
        list_and_page::<R>(count).await;
    }
}

async fn a_rename_onto_a_taken_name_is_a_409<R: Fixture>() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let first = R::create(&client, "edge-1").await.unwrap();
    let second = R::create(&client, "edge-2").await.unwrap().listed();
    let err = R::rename(&client, second.id(), "edge-1").await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "update {what} {id}: conflict (HTTP 409) on {what} {id}: a {what} named \"edge-1\" already exists",
            what = R::NAME,
            id = second.id()
        )
    );
    R::rename(&client, first.id(), "edge-1")
        .await
        .expect("keeping one's own name is no conflict");
    assert_eq!(client.get::<R>(second.id()).await.unwrap(), second);
}

async fn unknown_ids_are_404s<R: Fixture>() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    // Another object exists, and is untouched by all this.
    let other = R::create(&client, "other").await.unwrap().listed();
    let id = "6ee0bd21-4f50-454a-9f75-82f6933d54b0";
    let expect = |err: ApiError, verb: &str| {
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{verb} {what} {id}: {what} {id} not found (HTTP 404)",
                what = R::NAME
            )
        );
    };
    expect(client.get::<R>(id).await.unwrap_err(), "get");
    expect(
        R::rename(&client, id, "renamed").await.unwrap_err(),
        "update",
    );
    expect(client.delete::<R>(id).await.unwrap_err(), "delete");
    expect(client.status::<R>(id).await.unwrap_err(), "get status of");
    // Ids are one path segment: slashes and dots do not reach another object or endpoint.
    for tricky in [
        format!("../{}/{}", R::COLLECTION, other.id()),
        format!("{}/status", other.id()),
        format!("{}?x=1", other.id()),
        format!("{}#x", other.id()),
    ] {
        let err = client.delete::<R>(&tricky).await.unwrap_err();
        assert!(err.is_not_found(), "{tricky}: {err:?}");
    }
    assert_eq!(stored::<R>(&sim), vec![other]);
}

async fn dot_ids_never_address_the_collection<R: Fixture>() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let object = R::create(&client, "dots").await.unwrap().listed();
    for id in [".", ".."] {
        // GET of the collection (the list) would decode as an empty object.
        let got = client.get::<R>(id).await;
        assert!(
            got.as_ref().is_err_and(ApiError::is_not_found),
            "get({id:?}): {got:?}"
        );
        // DELETE of the collection is a 405.
        let deleted = client.delete::<R>(id).await;
        assert!(
            deleted.as_ref().is_err_and(ApiError::is_not_found),
            "delete({id:?}): {deleted:?}"
        );
        // A connector update is a POST, which on the collection would be a create.
        let renamed = R::rename(&client, id, &format!("made-by-update-{}", id.len())).await;
        assert!(
            renamed.as_ref().is_err_and(ApiError::is_not_found),
            "update({id:?}): {renamed:?}"
        );
        assert_eq!(stored::<R>(&sim), vec![object.clone()], "{id:?}");
    }
}

/// Every exchange the client reports: (method, endpoint template, code).
#[derive(Default)]
struct Exchanges(Mutex<Vec<(String, String, String)>>);

impl ApiObserver for Exchanges {
    fn observe(&self, endpoint: &str, method: &str, code: &str, _: Duration) {
        let entry = (method.to_owned(), endpoint.to_owned(), code.to_owned());
        self.0.lock().unwrap().push(entry);
    }
}

async fn a_wrong_token_is_a_401_that_never_shows_the_token<R: Fixture>() {
    let sim = support::start_sim(support::no_faults()).await;
    let wrong = "wrong-token-5d7c2a11e0";
    let exchanges = Arc::new(Exchanges::default());
    let mut cc = ClientConfig::new(sim.url(), SecretString::from(wrong.to_owned()));
    cc.retry = support::fast_retry();
    cc.observer = Observer(Some(exchanges.clone()));
    let client = Client::new(cc).unwrap();

    let errors = [
        client.list::<R>().await.unwrap_err(),
        R::create(&client, "x").await.unwrap_err(),
        client.get::<R>("some-id").await.unwrap_err(),
        R::rename(&client, "some-id", "y").await.unwrap_err(),
        client.delete::<R>("some-id").await.unwrap_err(),
        client.status::<R>("some-id").await.unwrap_err(),
        client.ipsec_pops().await.unwrap_err(),
    ];
    let secrets: Vec<&str> = std::iter::once(wrong)
        .chain(R::SECRETS.iter().copied())
        .collect();
    for err in &errors {
        assert!(err.is_unauthorized(), "{err:?}");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert_contains(&text, "unauthorized (HTTP 401)");
        assert_contains(&text, "token rejected or lacks the scope");
        assert_no_secrets(&format!("{text} {err:?}"), &secrets);
    }
    let unauthorized = "unauthorized (HTTP 401): token rejected or lacks the scope; check POPSEL_API_TOKEN or the token file and the token's scopes";
    assert_eq!(
        errors[0].to_string(),
        format!("list {} (page 1): {unauthorized}", R::COLLECTION)
    );
    assert_eq!(
        errors[1].to_string(),
        format!("create {} \"x\": {unauthorized}", R::NAME)
    );
    assert_no_secrets(&format!("{client:?}"), &[wrong]);
    // A 401 is not retried: one exchange per call.
    let seen = exchanges.0.lock().unwrap().clone();
    assert_eq!(seen.len(), errors.len(), "{seen:?}");
    assert!(seen.iter().all(|(_, _, code)| code == "401"), "{seen:?}");
    let delete = format!("/api/v1/{}/{{id}}", R::COLLECTION);
    assert!(
        seen.contains(&("DELETE".into(), delete, "401".into())),
        "{seen:?}"
    );
    assert!(stored::<R>(&sim).is_empty());
}
