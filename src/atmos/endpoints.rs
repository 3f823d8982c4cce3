//! The typed endpoints: the calls tunnels and connectors share, written once over
//! [`Resource`], and the per-resource calls where the documents make them differ.

use std::collections::HashSet;

use reqwest::Method;
use secrecy::SecretString;

use super::client::{Call, Client, Create, Delete, Target};
use super::error::ApiError;
use super::resource::{IPSEC_POPS, Resource};
use super::types::{
    Connector, ConnectorSpec, ConnectorUpdate, InstallCommand, Page, PopDocument, ResourceStatus,
    Tunnel, TunnelSpec, TunnelUpdate,
};

/// A list longer than this is refused rather than held in memory: ten times the largest
/// account popsel was built for, and at most this many pages are asked for.
const MAX_LISTED_OBJECTS: usize = 100_000;

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    // Serializing our own plain structs to a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Client {
    // ---- every resource ----

    /// One object. An id the server leaves out is the one asked for.
    pub async fn get<R: Resource>(&self, id: &str) -> Result<R, ApiError> {
        let call = Call::on_object::<R>("get", Method::GET, id, None);
        let mut object: R = self.fetch(&call).await?;
        if object.id().is_empty() {
            object.set_id(id.to_owned());
        }
        Ok(object)
    }

    /// Every object of the account, all pages, each once: an object that moves from one page
    /// to the next while we read (the list changed between requests) is not returned twice.
    ///
    /// A server whose paging never ends cannot keep it going: a page before the last must
    /// bring at least one object not seen yet, the page count may not pass what
    /// `totalRecords` and the page size allow, and the list may not pass
    /// [`MAX_LISTED_OBJECTS`]; each ends the listing with [`ApiError::BadPaging`].
    pub async fn list<R: Resource>(&self) -> Result<Vec<R>, ApiError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut page_number = 1;
        loop {
            let page = self.list_page::<R>(page_number).await?;
            let received = page.data.len();
            let before = out.len();
            for item in page.data {
                if seen.insert(item.list_key().to_owned()) {
                    out.push(item);
                }
            }
            let paging = Paging {
                page_number,
                total_pages: page.total_pages,
                total_records: page.total_records,
                page_size: page.page_size,
                asked_page_size: self.page_size(),
                next_link: page.next_page.as_deref().is_some_and(|u| !u.is_empty()),
                received,
                new: out.len() - before,
                listed: out.len(),
            };
            match paging.next() {
                Ok(None) => return Ok(out),
                Ok(Some(next)) => page_number = next,
                Err(detail) => {
                    return Err(ApiError::BadPaging {
                        op: format!("list {}", R::COLLECTION),
                        detail,
                    });
                }
            }
        }
    }

    /// One page of the list (`pageNumber` counts from 1).
    pub async fn list_page<R: Resource>(&self, page_number: u32) -> Result<Page<R>, ApiError> {
        let mut call = Call::new(
            format!("list {} (page {page_number})", R::COLLECTION),
            R::COLLECTION.to_owned(),
            Method::GET,
            Target::collection(R::COLLECTION),
        );
        call.query = vec![
            ("pageSize", self.page_size().to_string()),
            ("pageNumber", page_number.to_string()),
        ];
        self.fetch(&call).await
    }

    /// Deletes an object. A 404 after an attempt whose answer was lost is a success: that
    /// attempt did it.
    pub async fn delete<R: Resource>(&self, id: &str) -> Result<(), ApiError> {
        let call = Call::on_object::<R>("delete", Method::DELETE, id, None);
        self.retrying(&call, &Delete).await
    }

    pub async fn status<R: Resource>(
        &self,
        id: &str,
    ) -> Result<ResourceStatus<R::State>, ApiError> {
        let call = Call::on_object::<R>("get status of", Method::GET, id, Some("status"));
        let mut status: ResourceStatus<R::State> = self.fetch(&call).await?;
        if status.id.is_empty() {
            status.id = id.to_owned();
        }
        Ok(status)
    }

    /// Creates an object from `call`. Safe against a flaky API: after a lost answer the object
    /// `matches` picks out of the list is returned instead of a duplicate being made.
    async fn create<R: Resource>(
        &self,
        call: &Call<'_>,
        matches: impl Fn(&R) -> bool,
    ) -> Result<R, ApiError> {
        self.retrying(call, &Create::new(self, call, matches)).await
    }

    /// Changes the fields in `body`. The document promises "204 with the details"; the body,
    /// if any, is ignored: `get` tells the truth afterwards.
    async fn update<R: Resource>(
        &self,
        id: &str,
        method: Method,
        body: Vec<u8>,
        secrets: Vec<&SecretString>,
    ) -> Result<(), ApiError> {
        let mut call = Call::on_object::<R>("update", method, id, None);
        call.body = Some(body);
        call.secrets = secrets;
        self.send(&call).await.map(drop)
    }

    // ---- tunnels ----

    /// Creates a tunnel. After a lost answer, the tunnel with the same name, authentication ID
    /// and location is the one made.
    pub async fn create_tunnel(&self, spec: &TunnelSpec) -> Result<Tunnel, ApiError> {
        let mut call = Call::new(
            format!("create tunnel {:?}", spec.name),
            format!(
                "tunnel {:?} / authentication ID {:?}",
                spec.name, spec.authentication_id
            ),
            Method::POST,
            Target::collection(Tunnel::COLLECTION),
        );
        call.body = Some(json(spec));
        call.secrets = vec![&spec.psk];
        self.create(&call, |t: &Tunnel| {
            t.name == spec.name
                && t.authentication_id == spec.authentication_id
                && t.location_id == spec.location_id
        })
        .await
    }

    /// Updates a tunnel: the document makes this a `PUT`.
    pub async fn update_tunnel(&self, id: &str, update: &TunnelUpdate) -> Result<(), ApiError> {
        let secrets = update.psk.iter().collect();
        self.update::<Tunnel>(id, Method::PUT, json(update), secrets)
            .await
    }

    // ---- connectors ----

    /// Creates a connector; the answer carries the installation command. When the answer was
    /// lost and the connector found by name instead, `command` is `None`: regenerate it.
    pub async fn create_connector(&self, spec: &ConnectorSpec) -> Result<Connector, ApiError> {
        let mut call = Call::new(
            format!("create connector {:?}", spec.name),
            format!("connector {:?}", spec.name),
            Method::POST,
            Target::collection(Connector::COLLECTION),
        );
        call.body = Some(json(spec));
        self.create(&call, |c: &Connector| c.name == spec.name)
            .await
    }

    /// Updates a connector: the document makes this a `POST` to the connector's URL. Repeating
    /// it is harmless (it sets fields), so it is retried like a `PUT`.
    pub async fn update_connector(
        &self,
        id: &str,
        update: &ConnectorUpdate,
    ) -> Result<(), ApiError> {
        self.update::<Connector>(id, Method::POST, json(update), Vec::new())
            .await
    }

    /// A new installation command for a connector. Each call invalidates the previous command,
    /// which is what the caller asked for, so a retry after a lost answer is harmless.
    pub async fn regenerate_connector(&self, id: &str) -> Result<InstallCommand, ApiError> {
        let call = Call::on_object::<Connector>(
            "regenerate the installation command of",
            Method::POST,
            id,
            Some("regenerate"),
        );
        let mut cmd: InstallCommand = self.fetch(&call).await?;
        if cmd.id.is_empty() {
            cmd.id = id.to_owned();
        }
        Ok(cmd)
    }

    // ---- PoPs ----

    /// The IPsec PoP catalogue as sent (needs the `tunnels` scope).
    pub async fn ipsec_pops(&self) -> Result<PopDocument, ApiError> {
        self.fetch(&ipsec_pops_call()).await
    }

    /// The IPsec PoP catalogue, read by `read` from the text as sent: the agent and `rank`
    /// read it into their catalogue in one pass (`Catalog::from_json`), with no document in
    /// between. An error of `read` is the answer's, as a [`PopDocument`] that does not decode.
    pub async fn read_ipsec_pops<T>(
        &self,
        read: impl FnOnce(&str) -> Result<T, serde_json::Error>,
    ) -> Result<T, ApiError> {
        let call = ipsec_pops_call();
        let body = self.send(&call).await?;
        self.decode_with(&call, &body, |body| match std::str::from_utf8(body) {
            Ok(text) => read(text),
            Err(e) => Err(serde::de::Error::custom(format_args!(
                "not UTF-8 text (byte {})",
                e.valid_up_to()
            ))),
        })
    }
}

fn ipsec_pops_call() -> Call<'static> {
    let call = Call::new(
        "get the IPsec PoP list".to_owned(),
        "IPsec PoP list".to_owned(),
        Method::GET,
        Target::collection(IPSEC_POPS),
    );
    Call {
        catalog: true,
        ..call
    }
}

/// What one page of a list said, and what it brought.
struct Paging {
    page_number: u32,
    total_pages: u32,
    total_records: u64,
    /// As the server reports it (0: not reported).
    page_size: u32,
    asked_page_size: u32,
    next_link: bool,
    received: usize,
    /// Objects not seen on an earlier page.
    new: usize,
    /// Objects listed so far.
    listed: usize,
}

impl Paging {
    /// The page to ask for next, `None` when this was the last, or why the paging cannot be
    /// followed.
    fn next(&self) -> Result<Option<u32>, String> {
        let more = if self.total_pages > 0 {
            self.page_number < self.total_pages
        } else {
            self.next_link
        };
        if !more {
            return Ok(None);
        }
        let n = self.page_number;
        if self.received == 0 {
            return Err(format!(
                "page {n} is empty, yet {} announced",
                self.announced()
            ));
        }
        if self.new == 0 {
            return Err(format!(
                "page {n} brings nothing new (only objects of earlier pages), yet {} announced",
                self.announced()
            ));
        }
        if let Some(pages) = self.pages_allowed() {
            if u64::from(n) >= pages {
                return Err(format!(
                    "{} announced after page {n}, but {} records at {} a page make {pages}",
                    self.announced(),
                    self.total_records,
                    self.effective_page_size()
                ));
            }
        }
        if self.listed >= MAX_LISTED_OBJECTS {
            return Err(format!(
                "more than {MAX_LISTED_OBJECTS} objects, which popsel does not hold in memory"
            ));
        }
        Ok(n.checked_add(1))
    }

    fn announced(&self) -> String {
        if self.total_pages > 0 {
            format!("{} pages are", self.total_pages)
        } else {
            "a next page is".to_owned()
        }
    }

    /// The page size the server uses: the smaller of what we asked and what it reports, so
    /// that a server capping the page size is followed.
    fn effective_page_size(&self) -> u64 {
        let reported = if self.page_size > 0 {
            self.page_size
        } else {
            self.asked_page_size
        };
        u64::from(reported.min(self.asked_page_size).max(1))
    }

    /// The pages `totalRecords` allows, when the server reports it.
    fn pages_allowed(&self) -> Option<u64> {
        (self.total_records > 0).then(|| self.total_records.div_ceil(self.effective_page_size()))
    }
}
