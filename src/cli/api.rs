//! `popsel tunnels …`, `popsel connectors …`, `popsel pops`: the operator's direct line to the
//! API. PSKs are read from the environment, a file or stdin, never from arguments, and are
//! never printed.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use secrecy::SecretString;

use super::{Output, ProgressLine, Table, help, print_json};
use crate::atmos::rules::{MIN_PSK_CHARS, is_valid_authentication_id, is_valid_psk};
use crate::atmos::{
    Client, Connector, ConnectorSpec, ConnectorUpdate, Lenient, PopDocument, Resource, Tunnel,
    TunnelSpec, TunnelUpdate,
};

#[derive(Debug, Subcommand)]
pub enum TunnelCommand {
    /// List every tunnel (all pages)
    #[command(after_help = help::TUNNELS_LIST)]
    List,
    /// Show one tunnel
    #[command(after_help = help::TUNNELS_GET)]
    Get {
        /// The tunnel's ID
        id: String,
    },
    /// Create a tunnel
    #[command(after_help = help::TUNNELS_CREATE)]
    Create {
        /// The tunnel's name, unique in the account
        #[arg(long)]
        name: String,
        /// Email or IP address the tunnel authenticates as
        #[arg(long)]
        authentication_id: String,
        /// ID of the Atmos location the tunnel belongs to
        #[arg(long)]
        location_id: String,
        #[command(flatten)]
        psk: PskSource,
    },
    /// Change a tunnel's fields (PUT); fields not given are left as they are
    #[command(after_help = help::TUNNELS_UPDATE)]
    Update {
        /// The tunnel's ID
        id: String,
        /// New name
        #[arg(long)]
        name: Option<String>,
        /// New authentication ID (email or IP address)
        #[arg(long)]
        authentication_id: Option<String>,
        /// New location ID
        #[arg(long)]
        location_id: Option<String>,
        #[command(flatten)]
        psk: PskSource,
    },
    /// Delete a tunnel
    #[command(after_help = help::TUNNELS_DELETE)]
    Delete {
        /// The tunnel's ID
        id: String,
    },
    /// Show whether a tunnel is Connected or Disconnected
    #[command(after_help = help::TUNNELS_STATUS)]
    Status {
        /// The tunnel's ID
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// List every connector (all pages)
    #[command(after_help = help::CONNECTORS_LIST)]
    List,
    /// Show one connector
    #[command(after_help = help::CONNECTORS_GET)]
    Get {
        /// The connector's ID
        id: String,
    },
    /// Create a connector and print its installation command
    #[command(after_help = help::CONNECTORS_CREATE)]
    Create {
        /// The connector's name
        #[arg(long)]
        name: String,
        /// ID of the connector zone to put it in (optional)
        #[arg(long)]
        zone_id: Option<String>,
    },
    /// Change a connector's fields; fields not given are left as they are
    #[command(after_help = help::CONNECTORS_UPDATE)]
    Update {
        /// The connector's ID
        id: String,
        /// New name
        #[arg(long)]
        name: Option<String>,
        /// Enable (true) or disable (false) the connector
        #[arg(long)]
        enabled: Option<bool>,
        /// New connector zone ID
        #[arg(long)]
        zone_id: Option<String>,
    },
    /// Delete a connector
    #[command(after_help = help::CONNECTORS_DELETE)]
    Delete {
        /// The connector's ID
        id: String,
    },
    /// Show a connector's status
    #[command(after_help = help::CONNECTORS_STATUS)]
    Status {
        /// The connector's ID
        id: String,
    },
    /// Make a new installation command (the old one stops working)
    #[command(after_help = help::CONNECTORS_REGENERATE)]
    Regenerate {
        /// The connector's ID
        id: String,
    },
}

/// Where a PSK comes from. At most one.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct PskSource {
    /// Read the PSK from this environment variable
    #[arg(long, value_name = "VAR")]
    psk_env: Option<String>,
    /// Read the PSK from this file (surrounding white space dropped)
    #[arg(long, value_name = "FILE")]
    psk_file: Option<PathBuf>,
    /// Read the PSK from standard input
    #[arg(long)]
    psk_stdin: bool,
}

impl PskSource {
    fn read(&self) -> anyhow::Result<Option<SecretString>> {
        let text = if let Some(var) = &self.psk_env {
            std::env::var(var)
                .with_context(|| format!("--psk-env {var}: the variable is not set"))?
        } else if let Some(path) = &self.psk_file {
            std::fs::read_to_string(path)
                .with_context(|| format!("--psk-file {}", path.display()))?
        } else if self.psk_stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("--psk-stdin: reading standard input")?;
            s
        } else {
            return Ok(None);
        };
        let psk = text.trim();
        if !is_valid_psk(psk) {
            bail!("the PSK must be at least {MIN_PSK_CHARS} characters");
        }
        Ok(Some(SecretString::from(psk.to_owned())))
    }
}

fn check_authentication_id(id: &str) -> anyhow::Result<()> {
    if !is_valid_authentication_id(id) {
        bail!("--authentication-id {id:?} is neither an email nor an IP address");
    }
    Ok(())
}

/// How the CLI shows objects of a resource as a table.
trait Tabled: Resource {
    fn table(objects: &[Self]) -> String;
}

impl Tabled for Tunnel {
    fn table(tunnels: &[Tunnel]) -> String {
        let mut t = Table::new(&["ID", "NAME", "AUTHENTICATION ID", "LOCATION ID"]);
        for tunnel in tunnels {
            t.row(vec![
                tunnel.id.clone(),
                tunnel.name.clone(),
                tunnel.authentication_id.clone(),
                tunnel.location_id.clone(),
            ]);
        }
        t.render()
    }
}

impl Tabled for Connector {
    fn table(connectors: &[Connector]) -> String {
        let mut t = Table::new(&["ID", "NAME", "ENABLED", "ZONE ID"]);
        for c in connectors {
            t.row(vec![
                c.id.clone(),
                c.name.clone(),
                c.enabled.map_or("-".into(), |e| e.to_string()),
                c.connector_zone_id.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        t.render()
    }
}

fn show<T: serde::Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => print_json(value),
        Output::Table => {
            print!("{}", table());
            Ok(())
        }
    }
}

fn show_one<R: Tabled>(output: Output, object: &R) -> anyhow::Result<()> {
    show(output, object, || R::table(std::slice::from_ref(object)))
}

/// The subcommands that tunnels and connectors share.
enum Common {
    List,
    Get(String),
    Delete(String),
    Status(String),
}

async fn common<R: Tabled>(client: &Client, command: Common, output: Output) -> anyhow::Result<()> {
    match command {
        Common::List => {
            let all = client.list::<R>().await?;
            show(output, &all, || R::table(&all))
        }
        Common::Get(id) => show_one(output, &client.get::<R>(&id).await?),
        Common::Delete(id) => {
            client.delete::<R>(&id).await?;
            show(output, &serde_json::json!({ "deleted": id }), || {
                format!("deleted {} {id}\n", R::NAME)
            })
        }
        Common::Status(id) => {
            let s = client.status::<R>(&id).await?;
            show(output, &s, || {
                let mut t = Table::new(&["ID", "STATUS"]);
                t.row(vec![s.id.clone(), s.status.to_string()]);
                t.render()
            })
        }
    }
}

pub async fn tunnels(
    client: &Client,
    command: TunnelCommand,
    output: Output,
) -> anyhow::Result<()> {
    let common_command = match command {
        TunnelCommand::List => Common::List,
        TunnelCommand::Get { id } => Common::Get(id),
        TunnelCommand::Delete { id } => Common::Delete(id),
        TunnelCommand::Status { id } => Common::Status(id),
        TunnelCommand::Create {
            name,
            authentication_id,
            location_id,
            psk,
        } => {
            check_authentication_id(&authentication_id)?;
            let psk = psk
                .read()?
                .context("a new tunnel needs a PSK: give --psk-env, --psk-file or --psk-stdin")?;
            let spec = TunnelSpec {
                name,
                authentication_id,
                psk,
                location_id,
            };
            return show_one(output, &client.create_tunnel(&spec).await?);
        }
        TunnelCommand::Update {
            id,
            name,
            authentication_id,
            location_id,
            psk,
        } => {
            if let Some(a) = &authentication_id {
                check_authentication_id(a)?;
            }
            let update = TunnelUpdate {
                name,
                authentication_id,
                psk: psk.read()?,
                location_id,
            };
            if update.is_empty() {
                bail!(
                    "nothing to update: give at least one of --name, --authentication-id, --location-id or a PSK source"
                );
            }
            client.update_tunnel(&id, &update).await?;
            // The API answers an update with no body to trust: show the tunnel as it now is.
            Common::Get(id)
        }
    };
    common::<Tunnel>(client, common_command, output).await
}

pub async fn connectors(
    client: &Client,
    command: ConnectorCommand,
    output: Output,
) -> anyhow::Result<()> {
    let common_command = match command {
        ConnectorCommand::List => Common::List,
        ConnectorCommand::Get { id } => Common::Get(id),
        ConnectorCommand::Delete { id } => Common::Delete(id),
        ConnectorCommand::Status { id } => Common::Status(id),
        ConnectorCommand::Create { name, zone_id } => {
            let spec = ConnectorSpec {
                name,
                connector_zone_id: zone_id,
            };
            let c = client.create_connector(&spec).await?;
            return show(output, &c, || {
                let command = c.command.clone().unwrap_or_else(|| {
                    format!(
                        "(lost with a retried request: run `popsel connectors regenerate {}`)",
                        c.id
                    )
                });
                format!(
                    "{}\ninstallation command: {command}\n",
                    Connector::table(std::slice::from_ref(&c))
                )
            });
        }
        ConnectorCommand::Update {
            id,
            name,
            enabled,
            zone_id,
        } => {
            let update = ConnectorUpdate {
                name,
                enabled,
                connector_zone_id: zone_id,
            };
            if update == ConnectorUpdate::default() {
                bail!("nothing to update: give at least one of --name, --enabled or --zone-id");
            }
            client.update_connector(&id, &update).await?;
            // As for tunnels: show the connector as it now is.
            Common::Get(id)
        }
        ConnectorCommand::Regenerate { id } => {
            let cmd = client.regenerate_connector(&id).await?;
            return show(output, &cmd, || {
                format!("installation command: {}\n", cmd.command)
            });
        }
    };
    common::<Connector>(client, common_command, output).await
}

pub async fn pops(client: &Client, output: Output, waiting: &ProgressLine) -> anyhow::Result<()> {
    let doc = client.ipsec_pops().await;
    waiting.finish();
    let doc = doc?;
    show(output, &doc, || pop_table(&doc))
}

/// One row per FQDN; entries that do not have the documented shape are listed on stderr.
pub fn pop_table(doc: &PopDocument) -> String {
    let mut t = Table::new(&[
        "COUNTRY",
        "CITY",
        "PROVIDER",
        "LATITUDE",
        "LONGITUDE",
        "FQDN",
        "IP",
    ]);
    let text =
        |c: &Option<crate::atmos::Coordinate>| c.as_ref().map_or("-".into(), |c| c.to_string());
    for country in &doc.ip_sec_locations {
        let Lenient::Valid(country) = country else {
            eprintln!("warning: a country entry does not have the documented shape; skipped");
            continue;
        };
        for pop in &country.locations {
            let Lenient::Valid(pop) = pop else {
                eprintln!(
                    "warning: country {:?}: a location entry does not have the documented shape; skipped",
                    country.country
                );
                continue;
            };
            for (i, fqdn) in pop.fqdn.iter().filter_map(Lenient::valid).enumerate() {
                let first = i == 0;
                let cell = |v: String| if first { v } else { String::new() };
                t.row(vec![
                    cell(country.country.clone()),
                    cell(pop.city.clone().unwrap_or_default()),
                    cell(pop.provider.clone().unwrap_or_default()),
                    cell(text(&pop.latitude).trim_matches('"').to_owned()),
                    cell(text(&pop.longitude).trim_matches('"').to_owned()),
                    fqdn.name.clone().unwrap_or_default(),
                    fqdn.ip.0.join(", "),
                ]);
            }
        }
    }
    t.render()
}
