//! The typed endpoints: one method per documented call.

use reqwest::Method;

use super::client::{Call, Client};
use super::error::ApiError;
use super::types::{
    Connector, ConnectorSpec, ConnectorStatus, ConnectorUpdate, InstallCommand, Page, PopDocument,
    Tunnel, TunnelSpec, TunnelStatus, TunnelUpdate,
};

const TUNNELS: [&str; 3] = ["api", "v1", "tunnels"];
const CONNECTORS: [&str; 3] = ["api", "v1", "connectors"];
const POPS: [&str; 4] = ["api", "v1", "pops", "ipsec"];

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    // Serializing our own plain structs to a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn with_id<'a>(base: &[&'a str], id: &'a str) -> Vec<&'a str> {
    let mut segments = base.to_vec();
    segments.push(id);
    segments
}

impl Client {
    // ---- tunnels ----

    /// Creates a tunnel. Safe against a flaky API: see [`Client::create`] for how a lost answer
    /// is told apart from a failure, so that no duplicate is made.
    pub async fn create_tunnel(&self, spec: &TunnelSpec) -> Result<Tunnel, ApiError> {
        let mut call = Call::new(
            format!("create tunnel {:?}", spec.name),
            format!(
                "tunnel {:?} / authentication ID {:?}",
                spec.name, spec.authentication_id
            ),
            Method::POST,
            TUNNELS.to_vec(),
        );
        call.body = Some(json(spec));
        call.secrets = vec![&spec.psk];
        self.create(&call, || async {
            let all = self.list_tunnels().await?;
            Ok(all.into_iter().find(|t| {
                t.name == spec.name
                    && t.authentication_id == spec.authentication_id
                    && t.location_id == spec.location_id
            }))
        })
        .await
    }

    pub async fn get_tunnel(&self, id: &str) -> Result<Tunnel, ApiError> {
        let call = Call::new(
            format!("get tunnel {id}"),
            format!("tunnel {id}"),
            Method::GET,
            with_id(&TUNNELS, id),
        );
        let body = self.send(&call).await?;
        self.decode(&call, &body)
    }

    /// Every tunnel of the account, all pages.
    pub async fn list_tunnels(&self) -> Result<Vec<Tunnel>, ApiError> {
        self.list_all("tunnels", &TUNNELS).await
    }

    pub async fn list_tunnels_page(&self, page_number: u32) -> Result<Page<Tunnel>, ApiError> {
        self.list_page("tunnels", &TUNNELS, page_number).await
    }

    /// Updates a tunnel (`PUT`). The document promises "204 with the details"; the body, if
    /// any, is ignored: `get_tunnel` tells the truth afterwards.
    pub async fn update_tunnel(&self, id: &str, update: &TunnelUpdate) -> Result<(), ApiError> {
        let mut call = Call::new(
            format!("update tunnel {id}"),
            format!("tunnel {id}"),
            Method::PUT,
            with_id(&TUNNELS, id),
        );
        call.body = Some(json(update));
        call.secrets = update.psk.iter().collect();
        self.send(&call).await.map(drop)
    }

    pub async fn delete_tunnel(&self, id: &str) -> Result<(), ApiError> {
        let mut call = Call::new(
            format!("delete tunnel {id}"),
            format!("tunnel {id}"),
            Method::DELETE,
            with_id(&TUNNELS, id),
        );
        call.delete = true;
        self.send(&call).await.map(drop)
    }

    pub async fn tunnel_status(&self, id: &str) -> Result<TunnelStatus, ApiError> {
        let mut segments = with_id(&TUNNELS, id);
        segments.push("status");
        let call = Call::new(
            format!("get status of tunnel {id}"),
            format!("tunnel {id}"),
            Method::GET,
            segments,
        );
        let body = self.send(&call).await?;
        let mut status: TunnelStatus = self.decode(&call, &body)?;
        if status.id.is_empty() {
            status.id = id.to_owned();
        }
        Ok(status)
    }

    // ---- connectors ----

    /// Creates a connector; the answer carries the installation command. When the answer was
    /// lost and the connector found by name instead, `command` is `None`: regenerate it.
    pub async fn create_connector(&self, spec: &ConnectorSpec) -> Result<Connector, ApiError> {
        let mut call = Call::new(
            format!("create connector {:?}", spec.name),
            format!("connector {:?}", spec.name),
            Method::POST,
            CONNECTORS.to_vec(),
        );
        call.body = Some(json(spec));
        self.create(&call, || async {
            let all = self.list_connectors().await?;
            Ok(all.into_iter().find(|c| c.name == spec.name))
        })
        .await
    }

    pub async fn get_connector(&self, id: &str) -> Result<Connector, ApiError> {
        let call = Call::new(
            format!("get connector {id}"),
            format!("connector {id}"),
            Method::GET,
            with_id(&CONNECTORS, id),
        );
        let body = self.send(&call).await?;
        let mut connector: Connector = self.decode(&call, &body)?;
        if connector.id.is_empty() {
            connector.id = id.to_owned();
        }
        Ok(connector)
    }

    pub async fn list_connectors(&self) -> Result<Vec<Connector>, ApiError> {
        self.list_all("connectors", &CONNECTORS).await
    }

    pub async fn list_connectors_page(
        &self,
        page_number: u32,
    ) -> Result<Page<Connector>, ApiError> {
        self.list_page("connectors", &CONNECTORS, page_number).await
    }

    /// Updates a connector: the document makes this a `POST` to the connector's URL. Repeating
    /// it is harmless (it sets fields), so it is retried like a `PUT`.
    pub async fn update_connector(
        &self,
        id: &str,
        update: &ConnectorUpdate,
    ) -> Result<(), ApiError> {
        let mut call = Call::new(
            format!("update connector {id}"),
            format!("connector {id}"),
            Method::POST,
            with_id(&CONNECTORS, id),
        );
        call.body = Some(json(update));
        self.send(&call).await.map(drop)
    }

    pub async fn delete_connector(&self, id: &str) -> Result<(), ApiError> {
        let mut call = Call::new(
            format!("delete connector {id}"),
            format!("connector {id}"),
            Method::DELETE,
            with_id(&CONNECTORS, id),
        );
        call.delete = true;
        self.send(&call).await.map(drop)
    }

    pub async fn connector_status(&self, id: &str) -> Result<ConnectorStatus, ApiError> {
        let mut segments = with_id(&CONNECTORS, id);
        segments.push("status");
        let call = Call::new(
            format!("get status of connector {id}"),
            format!("connector {id}"),
            Method::GET,
            segments,
        );
        let body = self.send(&call).await?;
        let mut status: ConnectorStatus = self.decode(&call, &body)?;
        if status.id.is_empty() {
            status.id = id.to_owned();
        }
        Ok(status)
    }

    /// A new installation command for a connector. Each call invalidates the previous command,
    /// which is what the caller asked for, so a retry after a lost answer is harmless.
    pub async fn regenerate_connector(&self, id: &str) -> Result<InstallCommand, ApiError> {
        let mut segments = with_id(&CONNECTORS, id);
        segments.push("regenerate");
        let call = Call::new(
            format!("regenerate the installation command of connector {id}"),
            format!("connector {id}"),
            Method::POST,
            segments,
        );
        let body = self.send(&call).await?;
        let mut cmd: InstallCommand = self.decode(&call, &body)?;
        if cmd.id.is_empty() {
            cmd.id = id.to_owned();
        }
        Ok(cmd)
    }

    // ---- PoPs ----

    /// The IPsec PoP catalogue as sent (needs the `tunnels` scope).
    pub async fn ipsec_pops(&self) -> Result<PopDocument, ApiError> {
        let call = Call::new(
            "get the IPsec PoP list".to_owned(),
            "IPsec PoP list".to_owned(),
            Method::GET,
            POPS.to_vec(),
        );
        let body = self.send(&call).await?;
        self.decode(&call, &body)
    }
}
